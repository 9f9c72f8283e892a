// Gatepass admin console: small enhancements only; every page works without it.
"use strict";
document.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const field = document.getElementById(button.dataset.copy);
  const status = document.getElementById("copy-status");
  try {
    await navigator.clipboard.writeText(field.value);
    if (status) status.textContent = "Copied.";
  } catch {
    field.select();
    if (status) status.textContent = "Selected: press Ctrl+C (or ⌘C) to copy.";
  }
});
// A one-time secret page: reloading must never post the form again, so the
// address becomes the user's page (a reload shows it without the secret).
const pass = document.querySelector("[data-after]");
if (pass) history.replaceState(null, "", pass.dataset.after);
