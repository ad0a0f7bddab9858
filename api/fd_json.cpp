#include "fd_json.h"

#include <fcntl.h>

#include <nlohmann/json.hpp>

#include "json_dump.h"

namespace forkwatch {

using nlohmann::json;

std::string process_fds_json(const ProcessFds& p) {
  json fds = json::array();
  for (const FdItem& f : p.fds) {
    json item{{"fd", f.fd}, {"kind", fd_kind_name(f.kind)}, {"target", f.target}};
    if (f.deleted) item["deleted"] = true;
    if (f.info) {
      item["pos"] = f.info->pos;
      item["flags"] = f.info->flags;
      // A descriptor without close-on-exec is one an exec'd child inherits:
      // the classic leaked pipe end.
      item["cloexec"] = (f.info->flags & O_CLOEXEC) != 0;
      if (f.kind == FdKind::kEpoll) item["watches"] = f.info->epoll_targets;
      if (f.info->eventfd_count) item["count"] = *f.info->eventfd_count;
      if (f.info->sigmask) item["sigmask"] = *f.info->sigmask;
    }
    if (f.kind == FdKind::kSocket) {
      if (f.socket)
        item["socket"] = {{"family", f.socket->family}, {"type", f.socket->type}, {"state", f.socket->state},
                          {"local", f.socket->local}, {"remote", f.socket->remote}};
      else
        item["socket"] = nullptr;  // not in this namespace's tables (netlink, packet, another netns)
    }
    if (f.kind == FdKind::kSocket || f.kind == FdKind::kPipe) item["peers"] = f.peers;
    fds.push_back(std::move(item));
  }
  return dump_json(json{{"pid", p.pid}, {"fds", std::move(fds)}, {"unreadable", p.unreadable}});
}

}  // namespace forkwatch
