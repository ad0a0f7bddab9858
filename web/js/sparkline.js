// Sparkline: a small canvas line of a worker's recent CPU or RSS, with the
// area below it shaded. Points come from GET /api/workers/{id}/samples at
// first and from `sample` events afterwards.

const kKeepPoints = 600;  // the daemon keeps 10 minutes; at 1 sample/s that is 600

export class Sparkline {
  // kind: 'cpu' (0..100+, fixed floor of 100 % so small loads look small) or 'rss'.
  constructor(kind, { width = 96, height = 22, hue = 200 } = {}) {
    this.kind = kind;
    this.width = width;
    this.height = height;
    this.hue = hue;
    this.points = [];  // [ts_ns, value]
    this.canvas = document.createElement('canvas');
    this.canvas.className = `spark spark-${kind}`;
    const ratio = Math.min(3, window.devicePixelRatio || 1);
    this.canvas.width = Math.round(width * ratio);
    this.canvas.height = Math.round(height * ratio);
    this.canvas.style.width = `${width}px`;
    this.canvas.style.height = `${height}px`;
    this.ratio = ratio;
    this.canvas.setAttribute('role', 'img');
  }

  set(points) {
    this.points = points.slice(-kKeepPoints);
    this.draw();
  }

  add(ts, value) {
    const last = this.points[this.points.length - 1];
    if (last && last[0] >= ts) return;
    this.points.push([ts, value]);
    if (this.points.length > kKeepPoints) this.points.splice(0, this.points.length - kKeepPoints);
    this.draw();
  }

  last() {
    const p = this.points[this.points.length - 1];
    return p ? p[1] : null;
  }

  draw() {
    const ctx = this.canvas.getContext('2d');
    const { width: w, height: hgt, ratio } = this;
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, w, hgt);
    const pts = this.points;
    if (pts.length < 2) return;
    let max = this.kind === 'cpu' ? 100 : 0;
    let min = this.kind === 'cpu' ? 0 : Infinity;
    for (const [, v] of pts) {
      if (v > max) max = v;
      if (this.kind !== 'cpu' && v < min) min = v;
    }
    if (this.kind !== 'cpu') {
      // RSS: show the change, with a little headroom, from a floor of 0 when the range is flat.
      const span = max - min;
      min = span < max * 0.05 ? 0 : Math.max(0, min - span * 0.1);
    }
    const t0 = pts[0][0];
    const t1 = pts[pts.length - 1][0];
    const dt = Math.max(1, t1 - t0);
    const x = (t) => ((t - t0) / dt) * (w - 2) + 1;
    const y = (v) => hgt - 2 - ((v - min) / Math.max(1e-9, max - min)) * (hgt - 4);
    ctx.beginPath();
    ctx.moveTo(x(pts[0][0]), y(pts[0][1]));
    for (let i = 1; i < pts.length; i += 1) ctx.lineTo(x(pts[i][0]), y(pts[i][1]));
    ctx.strokeStyle = `hsl(${this.hue} 70% 62%)`;
    ctx.lineWidth = 1.25;
    ctx.stroke();
    ctx.lineTo(x(t1), hgt);
    ctx.lineTo(x(t0), hgt);
    ctx.closePath();
    ctx.fillStyle = `hsl(${this.hue} 70% 55% / 0.18)`;
    ctx.fill();
  }
}
