// Keyboard movement through a table of controls, as in a grid: the arrow
// keys go to the control in the same column of the row above or below
// (or the row's nearest one), left and right to the row's previous or next
// control, Home and End to its first or last. Tab still walks every control
// in order, so nothing is reachable only this way. Main thread only.

const kFocusable = 'button:not(:disabled), select:not(:disabled), input:not(:disabled), [tabindex="0"]';

function controls(tr) {
  return tr ? [...tr.querySelectorAll(kFocusable)] : [];
}

// The control of row tr nearest to column index `cell` of another row.
function nearest(tr, cell) {
  const list = controls(tr);
  if (!list.length) return null;
  let best = list[0];
  for (const c of list) {
    const at = c.closest('td, th')?.cellIndex ?? 0;
    if (at <= cell) best = c;
  }
  return best;
}

// Installs the movement on a <tbody> (or any element whose rows are <tr>).
export function gridKeys(body) {
  body.addEventListener('keydown', (e) => {
    if (e.altKey || e.ctrlKey || e.metaKey || e.shiftKey) return;
    const el = e.target;
    // Text fields and open lists keep their own arrow keys.
    if (el.tagName === 'INPUT' || el.tagName === 'SELECT') return;
    const tr = el.closest('tr');
    if (!tr || !body.contains(tr)) return;
    const row = controls(tr);
    const i = row.indexOf(el);
    const cell = el.closest('td, th')?.cellIndex ?? 0;
    let to = null;
    switch (e.key) {
      case 'ArrowDown': for (let r = tr.nextElementSibling; r && !to; r = r.nextElementSibling) to = nearest(r, cell); break;
      case 'ArrowUp': for (let r = tr.previousElementSibling; r && !to; r = r.previousElementSibling) to = nearest(r, cell); break;
      case 'ArrowRight': to = row[i + 1] ?? null; break;
      case 'ArrowLeft': to = i > 0 ? row[i - 1] : null; break;
      case 'Home': to = row[0] ?? null; break;
      case 'End': to = row[row.length - 1] ?? null; break;
      default: return;
    }
    e.preventDefault();
    if (to) to.focus();
  });
}

// Arrow keys, Home and End inside a role=menu of buttons (WAI-ARIA's menu pattern).
export function menuKeys(menu) {
  menu.addEventListener('keydown', (e) => {
    const items = [...menu.querySelectorAll('[role=menuitem]')];
    const i = items.indexOf(document.activeElement);
    let to;
    switch (e.key) {
      case 'ArrowDown': to = items[(i + 1) % items.length]; break;
      case 'ArrowUp': to = items[(i - 1 + items.length) % items.length]; break;
      case 'Home': to = items[0]; break;
      case 'End': to = items[items.length - 1]; break;
      default: return;
    }
    e.preventDefault();
    to?.focus();
  });
}
