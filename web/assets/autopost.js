// Submits a form marked data-autopost once the page loads: the SAML HTTP-POST
// binding (saml-bindings §3.5.4) without a click. Served from our own origin
// so the Content-Security-Policy needs no inline script; without scripts the
// form's button still works.
document.addEventListener("DOMContentLoaded", function () {
  var f = document.querySelector("form[data-autopost]");
  if (f) { f.submit(); }
});
