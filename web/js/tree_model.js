// TreeModel: the process tree from GET /api/tree, indexed by pid, plus what
// the person chose to see (collapsed subtrees, open thread lists, a filter).
// flatten() turns it into the flat list of rows the virtual list draws, with
// htop-style guides. Pure data, no DOM: node's test runner checks it.
//
// Every walk is iterative: a fork chain thousands deep must not overflow the
// JavaScript stack.

const kGuideBranch = '├─ ';
const kGuideLast = '└─ ';
const kGuidePipe = '│  ';
const kGuideBlank = '   ';
// Guides stop growing below this depth (a fork chain thousands deep would
// otherwise draw lines wider than the screen); deeper rows say how much deeper.
const kMaxGuideDepth = 32;

// What a sample event did to the model (TreeModel.patch).
export const kPatched = 'patched';    // figures changed in place: repaint the rows
export const kReshaped = 'reshaped';  // names or thread lists changed: flatten the rows again
export const kStale = 'stale';        // a process we do not know: refetch the tree

// Copies a sampled thread list onto a node: figures in place when it holds
// the same threads, else the sampled list replaces the node's (the daemon
// sends a process's whole list when its threads came or went). True if the
// list was replaced.
function patchThreads(n, sampled) {
  const same = sampled.length === n.threads.length && sampled.every((s, i) => s.tid === n.threads[i].tid);
  if (!same) {
    n.threads = sampled.map((s) => ({ ...s }));
    return true;
  }
  sampled.forEach((s, i) => {
    const t = n.threads[i];
    t.state = s.state;
    t.cpu_percent = s.cpu_percent;
    t.name = s.name;
    if ('wchan' in s) t.wchan = s.wchan;
  });
  return false;
}

export class TreeModel {
  constructor() {
    this.roots = [];
    this.byPid = new Map();
    this.collapsed = new Set();    // pids whose children are hidden
    this.threadsOpen = new Map();  // pid -> bool, overrides threadsDefault
    this.threadsDefault = false;
    this.threadsWorkersOnly = false;  // the default opens only workers' thread lists
    this.filter = '';
    this.processes = 0;
    this.threads = 0;
  }

  // Takes the parsed JSON array of root nodes. Nodes gain a few fields of our
  // own, prefixed with an underscore: _parent, _depth, _worker (nearest worker
  // id at or above), _hay (lowercase text the filter searches).
  setTree(roots) {
    this.roots = Array.isArray(roots) ? roots : [];
    this.byPid = new Map();
    let threads = 0;
    const stack = [];
    for (let i = this.roots.length - 1; i >= 0; i -= 1) {
      const r = this.roots[i];
      r._parent = null;
      r._depth = 0;
      stack.push(r);
    }
    while (stack.length) {
      const n = stack.pop();
      if (!Array.isArray(n.children)) n.children = [];
      if (!Array.isArray(n.threads)) n.threads = [];
      this.byPid.set(n.pid, n);
      threads += n.threads.length || 1;
      n._worker = n.worker_id ?? (n._parent ? n._parent._worker : null);
      n._hay = null;
      for (let i = n.children.length - 1; i >= 0; i -= 1) {
        const c = n.children[i];
        c._parent = n;
        c._depth = n._depth + 1;
        stack.push(c);
      }
    }
    this.processes = this.byPid.size;
    this.threads = threads;
    // Forget choices about processes that are gone, so the sets stay small.
    for (const pid of this.collapsed) if (!this.byPid.has(pid)) this.collapsed.delete(pid);
    for (const pid of this.threadsOpen.keys()) if (!this.byPid.has(pid)) this.threadsOpen.delete(pid);
  }

  // Applies the `nodes` of a sample event (pid, state, cpu_percent, rss_bytes,
  // num_threads; comm, cmdline and threads for some). Returns kStale when the
  // tree's shape no longer matches (a pid we do not know): the caller
  // refetches the tree. Else kReshaped if a name or a thread list changed
  // (the rows, and what a filter keeps, must be worked out again), kPatched
  // if only figures changed. A thread count that changed with no list to say
  // how (the sample that carried the list came before this page listened)
  // is one process's matter: its pid goes to threadsUnknown, for the caller
  // to fetch that process alone and hand its threads to setThreads().
  patch(nodes) {
    this.threadsUnknown = [];
    let result = kPatched;
    for (const p of nodes) {
      const n = this.byPid.get(p.pid);
      if (!n) return kStale;
      n.state = p.state;
      n.cpu_percent = p.cpu_percent;
      n.rss_bytes = p.rss_bytes;
      if (p.fds !== undefined) n.fds = p.fds;
      if (p.comm !== undefined) {
        // It exec'd or renamed itself: what the filter searches changed too.
        n.comm = p.comm;
        n.cmdline = p.cmdline;
        n._hay = null;
        result = kReshaped;
      }
      if (p.threads) {
        const before = n.threads.length || 1;
        if (patchThreads(n, p.threads)) {
          this.threads += (n.threads.length || 1) - before;
          result = kReshaped;
        }
      } else if (n.threads.length > 0 && p.num_threads !== n.threads.length) {
        this.threadsUnknown.push(p.pid);
      }
    }
    return result;
  }

  // A process's whole thread list, fetched on its own; true if it changed.
  setThreads(pid, threads) {
    const n = this.byPid.get(pid);
    if (!n) return false;
    const before = n.threads.length || 1;
    if (!patchThreads(n, threads)) return false;
    this.threads += (n.threads.length || 1) - before;
    return true;
  }

  threadsShown(n) {
    if (n.threads.length < 2) return false;
    const open = this.threadsOpen.get(n.pid);
    if (open !== undefined) return open;
    return this.threadsDefault && (!this.threadsWorkersOnly || (n._worker !== null && n._worker !== undefined));
  }

  toggleChildren(pid) {
    if (this.collapsed.has(pid)) this.collapsed.delete(pid);
    else this.collapsed.add(pid);
  }

  toggleThreads(pid) {
    const n = this.byPid.get(pid);
    if (n) this.threadsOpen.set(pid, !this.threadsShown(n));
  }

  setAllCollapsed(collapsed) {
    this.collapsed.clear();
    if (!collapsed) return;
    for (const n of this.byPid.values()) if (n.children.length && n._depth > 0) this.collapsed.add(n.pid);
  }

  static hay(n) {
    if (n._hay === null || n._hay === undefined) {
      n._hay = `${n.pid} ${n.comm ?? ''} ${n.cmdline ?? ''} ${n.worker_name ?? ''}`.toLowerCase();
    }
    return n._hay;
  }

  // With a filter: which processes to show. A process is kept when it, one of
  // its threads, or a descendant matches; matching ones are marked, the rest
  // are context. Returns {keep: Set, hit: Set, threadHits: Map pid -> Set tid}.
  matches(query) {
    const keep = new Set();
    const hit = new Set();
    const threadHits = new Map();
    for (const n of this.byPid.values()) {
      let matched = TreeModel.hay(n).includes(query);
      if (!matched) {
        for (const t of n.threads) {
          if (String(t.tid).includes(query) || (t.name ?? '').toLowerCase().includes(query)) {
            if (!threadHits.has(n.pid)) threadHits.set(n.pid, new Set());
            threadHits.get(n.pid).add(t.tid);
          }
        }
      }
      if (!matched && !threadHits.has(n.pid)) continue;
      if (matched) hit.add(n.pid);
      for (let a = n; a && !keep.has(a.pid); a = a._parent) keep.add(a.pid);
    }
    return { keep, hit, threadHits };
  }

  // The rows to draw, top to bottom. Each row: {node, thread (or null),
  // depth, guide (the tree-drawing prefix), hasChildren, open, hit}.
  flatten() {
    const rows = [];
    const query = this.filter.trim().toLowerCase();
    const m = query ? this.matches(query) : null;
    // Frames: [node or thread, owner node, prefix, isLast, depth]
    const stack = [];
    for (let i = this.roots.length - 1; i >= 0; i -= 1) {
      const r = this.roots[i];
      if (m && !m.keep.has(r.pid)) continue;
      stack.push({ n: r, t: null, prefix: '', last: true, depth: 0, root: true });
    }
    while (stack.length) {
      const f = stack.pop();
      let guide = f.root ? '' : f.prefix + (f.last ? kGuideLast : kGuideBranch);
      if (f.depth > kMaxGuideDepth) guide = `${f.prefix}+${f.depth - kMaxGuideDepth} ${f.last ? kGuideLast : kGuideBranch}`;
      if (f.t) {
        rows.push({ node: f.n, thread: f.t, depth: f.depth, guide, hasChildren: false, open: false,
          hit: m ? (m.threadHits.get(f.n.pid)?.has(f.t.tid) ?? false) : false });
        continue;
      }
      const n = f.n;
      const kids = m ? n.children.filter((c) => m.keep.has(c.pid)) : n.children;
      // Filtering opens every kept subtree: a match hidden in a collapsed one helps nobody.
      const open = m ? true : !this.collapsed.has(n.pid);
      rows.push({ node: n, thread: null, depth: f.depth, guide, hasChildren: n.children.length > 0,
        open, hit: m ? m.hit.has(n.pid) : false });
      let threads = [];
      if (m && !m.hit.has(n.pid) && m.threadHits.has(n.pid)) {
        const tids = m.threadHits.get(n.pid);
        threads = n.threads.filter((t) => tids.has(t.tid));
      } else if (this.threadsShown(n)) {
        threads = n.threads;
      }
      const shownKids = open ? kids : [];
      const total = threads.length + shownKids.length;
      if (total === 0) continue;
      let childPrefix = f.root ? '' : f.prefix + (f.last ? kGuideBlank : kGuidePipe);
      if (f.depth >= kMaxGuideDepth) childPrefix = f.prefix;
      // Push in reverse so that threads come out first, then children in pid order.
      for (let i = shownKids.length - 1; i >= 0; i -= 1) {
        stack.push({ n: shownKids[i], t: null, prefix: childPrefix, last: threads.length + i === total - 1,
          depth: f.depth + 1, root: false });
      }
      for (let i = threads.length - 1; i >= 0; i -= 1) {
        stack.push({ n, t: threads[i], prefix: childPrefix, last: i === total - 1, depth: f.depth + 1,
          root: false });
      }
    }
    return rows;
  }
}

// Leaf counts and positions for the icicle drawing: each node's width is the
// share of leaves below it. Returns [{node, x0, x1, depth}] with x in [0, 1],
// parents before children, and the deepest depth.
export function icicleLayout(roots) {
  const out = [];
  if (!roots.length) return { cells: out, depth: 0 };
  const leaves = new Map();
  // Post-order without recursion: visit, then count children after them.
  const order = [];
  const stack = [...roots];
  while (stack.length) {
    const n = stack.pop();
    order.push(n);
    for (const c of n.children) stack.push(c);
  }
  for (let i = order.length - 1; i >= 0; i -= 1) {
    const n = order[i];
    let sum = 0;
    for (const c of n.children) sum += leaves.get(c);
    leaves.set(n, Math.max(1, sum));
  }
  let total = 0;
  for (const r of roots) total += leaves.get(r);
  let maxDepth = 0;
  const queue = [];
  let x = 0;
  for (const r of roots) {
    const w = leaves.get(r) / total;
    queue.push({ node: r, x0: x, x1: x + w, depth: 0 });
    x += w;
  }
  for (let k = 0; k < queue.length; k += 1) {
    const cell = queue[k];
    out.push(cell);
    if (cell.depth > maxDepth) maxDepth = cell.depth;
    const n = cell.node;
    const span = cell.x1 - cell.x0;
    const own = leaves.get(n);
    let cx = cell.x0;
    for (const c of n.children) {
      const w = (leaves.get(c) / own) * span;
      queue.push({ node: c, x0: cx, x1: cx + w, depth: cell.depth + 1 });
      cx += w;
    }
  }
  return { cells: out, depth: maxDepth };
}
