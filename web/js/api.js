// The daemon's REST API, same origin. The token lives in an HttpOnly cookie
// that GET /?token=… set; the page never sees it. Changes go out as fetch
// POST/DELETE, which carry an Origin header, so the daemon's CSRF check passes.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function request(method, path, body) {
  const init = { method, credentials: 'same-origin', headers: { Accept: 'application/json' } };
  if (method !== 'GET') {
    // Always a body: a POST without Content-Length makes the server wait for it.
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body ?? {});
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, 'unreachable', `the daemon cannot be reached (${e.message})`);
  }
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    throw new ApiError(res.status, 'bad_reply', `${method} ${path}: the reply is not JSON (HTTP ${res.status})`);
  }
  if (!res.ok) {
    const err = data && data.error ? data.error : { code: 'http', message: `HTTP ${res.status}` };
    throw new ApiError(res.status, err.code, err.message);
  }
  return data;
}

const enc = encodeURIComponent;

export const api = {
  programs: () => request('GET', '/api/programs').then((d) => d.programs),
  workers: () => request('GET', '/api/workers').then((d) => d.workers),
  worker: (id) => request('GET', `/api/workers/${enc(id)}`),
  startWorker: (spec) => request('POST', '/api/workers', spec),
  signal: (id, signal) => request('POST', `/api/workers/${enc(id)}/signal`, { signal }),
  stop: (id) => request('POST', `/api/workers/${enc(id)}/stop`),
  restart: (id) => request('POST', `/api/workers/${enc(id)}/restart`),
  // Freeze and thaw the worker's whole tree (cgroup.freeze; 409 without cgroups).
  pause: (id) => request('POST', `/api/workers/${enc(id)}/pause`),
  resume: (id) => request('POST', `/api/workers/${enc(id)}/resume`),
  remove: (id) => request('DELETE', `/api/workers/${enc(id)}`),
  // What the caller may do: {role: "admin"|"read", socket}.
  session: () => request('GET', '/api/session'),
  logs: (id, { stream = 'both', tail, after } = {}) => {
    const q = new URLSearchParams({ stream });
    if (tail) q.set('tail', tail);
    if (after) q.set('after', after);
    return request('GET', `/api/workers/${enc(id)}/logs?${q}`);
  },
  samples: (id) => request('GET', `/api/workers/${enc(id)}/samples`).then((d) => d.samples),
  tree: (scope) => request('GET', `/api/tree?scope=${enc(scope)}`),
  process: (pid) => request('GET', `/api/processes/${enc(pid)}`),
  fds: (pid) => request('GET', `/api/processes/${enc(pid)}/fds`),
  // One process lifetime's threads, newest first: {lifetime_id, rows, next_before}.
  lifetimeThreads: (id, { limit = 200, before } = {}) => {
    const q = new URLSearchParams({ limit });
    if (before) q.set('before', before);
    return request('GET', `/api/lifetimes/${enc(id)}/threads?${q}`);
  },
  history: ({ worker, limit, before } = {}) => {
    const q = new URLSearchParams();
    if (worker) q.set('worker', worker);
    if (limit) q.set('limit', limit);
    if (before) q.set('before', before);
    return request('GET', `/api/history?${q}`).then((d) => d.rows);
  },
};
