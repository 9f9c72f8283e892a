// Gatepass passkey ceremonies (WebAuthn). Served by Gatepass itself; no
// dependencies. Buttons and links opt in with data attributes:
//   data-passkey="discoverable" | "username"  (sign-in; needs data-flow, data-csrf)
//   data-register                              (security info; CSRF from <meta name="csrf">)
"use strict";
(() => {
  const b64u = {
    decode(s) {
      const pad = "===".slice((s.length + 3) % 4);
      const bin = atob(s.replace(/-/g, "+").replace(/_/g, "/") + pad);
      return Uint8Array.from(bin, (c) => c.charCodeAt(0));
    },
    encode(buf) {
      const bytes = new Uint8Array(buf);
      let bin = "";
      for (const b of bytes) bin += String.fromCharCode(b);
      return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
    },
  };

  function showError(message) {
    const box = document.getElementById("passkey-error");
    if (box) {
      box.textContent = message;
      box.hidden = false;
    }
  }

  async function postJson(url, body, headers = {}) {
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", ...headers },
      body: JSON.stringify(body),
    });
    let data = {};
    try {
      data = await response.json();
    } catch (_) {
      /* empty or non-JSON body */
    }
    return { ok: response.ok, status: response.status, data };
  }

  async function signIn(el) {
    const flow = el.dataset.flow;
    const csrf = el.dataset.csrf;
    const start = await postJson("/signin/passkey/start", { flow, csrf, mode: el.dataset.passkey });
    if (!start.ok) return showError(start.data.message || "Passkey sign-in is not available.");
    const publicKey = start.data.options.publicKey;
    publicKey.challenge = b64u.decode(publicKey.challenge);
    for (const c of publicKey.allowCredentials || []) c.id = b64u.decode(c.id);
    let cred;
    try {
      cred = await navigator.credentials.get({ publicKey });
    } catch (e) {
      return showError("The passkey was not used: " + e.message);
    }
    const credential = {
      id: cred.id,
      rawId: b64u.encode(cred.rawId),
      type: cred.type,
      response: {
        authenticatorData: b64u.encode(cred.response.authenticatorData),
        clientDataJSON: b64u.encode(cred.response.clientDataJSON),
        signature: b64u.encode(cred.response.signature),
        userHandle: cred.response.userHandle ? b64u.encode(cred.response.userHandle) : null,
      },
      extensions: cred.getClientExtensionResults(),
    };
    const finish = await postJson("/signin/passkey/finish", { flow, csrf, ceremony: start.data.ceremony, credential });
    if (!finish.ok) return showError(finish.data.message || "Sign-in failed.");
    window.location.assign(finish.data.redirect);
  }

  async function register(el) {
    const csrf = document.querySelector('meta[name="csrf"]').content;
    const headers = { "X-CSRF-Token": csrf };
    const start = await postJson("/account/passkeys/register/start", {}, headers);
    if (start.status === 403 && start.data.step_up) return window.location.assign(start.data.step_up);
    if (!start.ok) return showError(start.data.message || "Adding a passkey is not possible right now.");
    const publicKey = start.data.options.publicKey;
    publicKey.challenge = b64u.decode(publicKey.challenge);
    publicKey.user.id = b64u.decode(publicKey.user.id);
    for (const c of publicKey.excludeCredentials || []) c.id = b64u.decode(c.id);
    let cred;
    try {
      cred = await navigator.credentials.create({ publicKey });
    } catch (e) {
      return showError("No passkey was created: " + e.message);
    }
    const credential = {
      id: cred.id,
      rawId: b64u.encode(cred.rawId),
      type: cred.type,
      response: {
        attestationObject: b64u.encode(cred.response.attestationObject),
        clientDataJSON: b64u.encode(cred.response.clientDataJSON),
        transports: cred.response.getTransports ? cred.response.getTransports() : [],
      },
      extensions: cred.getClientExtensionResults(),
    };
    const nameInput = document.getElementById("passkey-name");
    const name = (nameInput && nameInput.value.trim()) || "Passkey";
    const finish = await postJson("/account/passkeys/register/finish", { ceremony: start.data.ceremony, name, credential }, headers);
    if (finish.status === 403 && finish.data.step_up) return window.location.assign(finish.data.step_up);
    if (!finish.ok) return showError(finish.data.message || "The passkey could not be saved.");
    window.location.reload();
  }

  document.addEventListener("click", (event) => {
    const el = event.target.closest("[data-passkey], [data-register]");
    if (!el) return;
    event.preventDefault();
    if (!window.PublicKeyCredential) return showError("This browser does not support passkeys.");
    (el.dataset.register !== undefined ? register(el) : signIn(el)).catch((e) => showError(String(e)));
  });
})();
