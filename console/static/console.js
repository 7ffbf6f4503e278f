// Gatehouse console: progressive enhancement only; every page works without it.
'use strict';
document.addEventListener('click', (ev) => {
  const btn = ev.target.closest('button[data-copy]');
  if (!btn) return;
  const text = btn.getAttribute('data-copy');
  const done = () => {
    const label = btn.textContent;
    btn.textContent = 'Copied';
    setTimeout(() => { btn.textContent = label; }, 1500);
  };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(done, () => select(btn));
  } else {
    select(btn);
  }
});
// Without the clipboard API (plain http), select the text for Ctrl+C.
function select(btn) {
  const code = btn.parentElement.querySelector('code');
  if (!code) return;
  const range = document.createRange();
  range.selectNodeContents(code);
  const sel = window.getSelection();
  sel.removeAllRanges();
  sel.addRange(range);
}
// Focus the first invalid field after a failed submit, so keyboard and
// screen-reader users land on the error.
document.addEventListener('DOMContentLoaded', () => {
  const bad = document.querySelector('[aria-invalid="true"]');
  if (bad) bad.focus();
});
