// MyAIServ Console: small progressive enhancements; every page works without them.
// Loaded from our origin under a CSP without inline scripts: no inline handlers anywhere.
"use strict";

const Console = (() => {
  const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content || "";

  // Forms that change or destroy something ask first: <form data-confirm="Revoke this key?">
  document.addEventListener("submit", (event) => {
    const message = event.target.dataset?.confirm;
    if (message && !window.confirm(message)) event.preventDefault();
  });

  // Filters that apply at once: <select data-autosubmit>
  document.addEventListener("change", (event) => {
    if (event.target.matches?.("[data-autosubmit]")) event.target.form?.requestSubmit();
  });

  return { csrf };
})();
