// The runs search form: fields left empty are not sent, so the URL of a search (shareable,
// bookmarkable) names only the filters in use. Without scripts the form works the same.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const form = document.querySelector("form.search");
  if (!form) return;
  form.addEventListener("submit", () => {
    for (const field of form.querySelectorAll("input, select")) {
      if (field.type !== "checkbox" && field.value.trim() === "") field.disabled = true;
    }
    // Re-enabled on the way back (the back/forward cache keeps the page as it was).
    setTimeout(() => form.querySelectorAll(":disabled").forEach((f) => { f.disabled = false; }), 0);
  });
});
