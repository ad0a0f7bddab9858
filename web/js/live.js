// LiveFeed: the one EventSource on /api/events. The browser reconnects on its
// own after a network error and sends Last-Event-ID, so the daemon replays
// what we missed. When the browser gives up (an HTTP error such as 401 or
// 429 closes the stream for good), we open a new one after a backoff and
// pass the last id as ?since=, which the daemon treats the same way.

export const kEventTypes = ['spawn', 'exit', 'stop', 'continue', 'restart', 'adopt', 'state', 'sample', 'process',
  'pause', 'resume'];

export class LiveFeed {
  // onEvent(type, data, id); onStatus(state, detail) with state one of
  // connecting, live, reconnecting, offline; onResync() after every
  // reconnect, to refetch what a replay cannot carry (the tree).
  constructor({ url = '/api/events', onEvent, onStatus, onResync }) {
    this.url = url;
    this.onEvent = onEvent;
    this.onStatus = onStatus;
    this.onResync = onResync;
    this.es = null;
    this.lastId = '';
    this.everOpen = false;
    this.lostSinceOpen = false;
    this.retryMs = 1000;
    this.retryTimer = 0;
    this.received = 0;
  }

  start() {
    this.open(this.url);
    this.onStatus('connecting', 'opening the event stream');
  }

  open(url) {
    const es = new EventSource(url);
    this.es = es;
    es.onopen = () => {
      this.retryMs = 1000;
      this.onStatus('live', this.lastId ? `resumed after event ${this.lastId}` : 'connected');
      if (this.everOpen && this.lostSinceOpen) this.onResync();
      this.everOpen = true;
      this.lostSinceOpen = false;
    };
    es.onerror = () => {
      if (this.es !== es) return;
      this.lostSinceOpen = true;
      if (es.readyState === EventSource.CONNECTING) {
        this.onStatus('reconnecting', 'connection lost; the browser is reconnecting');
        return;
      }
      // Closed for good by the browser: we retry ourselves.
      es.close();
      const wait = this.retryMs;
      this.retryMs = Math.min(this.retryMs * 2, 15000);
      this.onStatus('offline', `the event stream was refused; retrying in ${Math.round(wait / 1000)} s`);
      clearTimeout(this.retryTimer);
      this.retryTimer = setTimeout(() => {
        const since = this.lastId ? `?since=${encodeURIComponent(this.lastId)}` : '';
        this.onStatus('reconnecting', 'reopening the event stream');
        this.open(this.url + since);
      }, wait);
    };
    for (const type of kEventTypes) {
      es.addEventListener(type, (e) => {
        if (e.lastEventId) this.lastId = e.lastEventId;
        this.received += 1;
        let data;
        try {
          data = JSON.parse(e.data);
        } catch {
          return;  // a malformed event is dropped, not fatal
        }
        this.onEvent(type, data, e.lastEventId);
      });
    }
  }
}
