// Text a process supplied (its output, names, arguments) made visible
// exactly: every character that would move the cursor, end a line, talk to
// a terminal or reorder what is shown becomes an escape, by the same rule as
// the daemon's escape_control (daemon/untrusted_text.h), so the page and
// `forkwatch logs` show the same line. Pure except untrustedText(), which
// builds text nodes (never HTML) for the page's main thread.

import { h } from './dom.js';

// C0, DEL, C1, and the bidi and line controls of UAX #9 ("Trojan Source").
function isControl(cp) {
  return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || cp === 0x061c || cp === 0x200e || cp === 0x200f ||
    (cp >= 0x2028 && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

function escapeOne(cp) {
  if (cp === 0x0a) return '\\n';
  if (cp === 0x0d) return '\\r';
  if (cp === 0x09) return '\\t';
  const hex = cp.toString(16);
  return cp < 0x80 ? `\\x${hex.padStart(2, '0')}` : `\\u${hex.padStart(4, '0')}`;
}

// The daemon sends invalid UTF-8 as U+FFFD (daemon/json_dump.h); it is
// marked too, so a replaced byte is not mistaken for a printed one.
const kReplacement = 0xfffd;

// s as [text, escaped] pieces: escaped pieces are what escapeControl writes
// in place of one control character (or a run of U+FFFD).
export function controlSegments(s) {
  const out = [];
  let plain = '';
  const str = String(s ?? '');
  for (const ch of str) {
    const cp = ch.codePointAt(0);
    if (isControl(cp)) {
      if (plain) out.push([plain, false]);
      plain = '';
      out.push([escapeOne(cp), true]);
    } else if (cp === kReplacement || (cp >= 0xd800 && cp <= 0xdfff)) {
      // A lone surrogate cannot come from the daemon's JSON, but JSON allows it.
      if (plain) out.push([plain, false]);
      plain = '';
      const last = out[out.length - 1];
      if (last && last[1] && last[0].startsWith('\ufffd')) last[0] += '\ufffd';
      else out.push(['\ufffd', true]);
    } else {
      plain += ch;
    }
  }
  if (plain) out.push([plain, false]);
  return out;
}

// s as one line of plain text, the controls written as escapes.
export function escapeControl(s) {
  return controlSegments(s).map(([t]) => t).join('');
}

// A <span> of s as text nodes, escapes marked (class "esc") so that a
// program printing a literal backslash-x reads differently from a real ESC.
export function untrustedText(s, cls = 'untrusted') {
  const el = h('span', { class: cls });
  for (const [text, escaped] of controlSegments(s)) {
    el.append(escaped
      ? h('span', { class: 'esc', title: text.startsWith('\ufffd') ? 'bytes that are not UTF-8' : 'control character' }, text)
      : document.createTextNode(text));
  }
  return el;
}
