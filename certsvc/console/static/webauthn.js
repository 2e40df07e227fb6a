"use strict";
// The console's security-key forms (ours, no library): on submit, ask the browser's WebAuthn
// for a new credential (data-webauthn-mode="register") or an assertion ("sign-in") with the
// options the server put in data-webauthn, put the answer in the form's hidden `credential`
// field as JSON (binary as base64url), and send the form. The server checks everything.
(function () {
  const form = document.querySelector("form[data-webauthn]");
  if (!form) {
    return;
  }
  const bytes = (text) =>
    Uint8Array.from(atob(text.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));
  const text = (buffer) =>
    btoa(String.fromCharCode(...new Uint8Array(buffer)))
      .replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  const failed = document.getElementById("webauthn-error");

  async function register(options) {
    options.challenge = bytes(options.challenge);
    options.user.id = bytes(options.user.id);
    (options.excludeCredentials || []).forEach((c) => { c.id = bytes(c.id); });
    const made = await navigator.credentials.create({ publicKey: options });
    return {
      id: made.id,
      rawId: text(made.rawId),
      type: made.type,
      response: {
        clientDataJSON: text(made.response.clientDataJSON),
        attestationObject: text(made.response.attestationObject),
        transports: made.response.getTransports ? made.response.getTransports() : [],
      },
      clientExtensionResults: made.getClientExtensionResults(),
    };
  }

  async function assert(options) {
    options.challenge = bytes(options.challenge);
    (options.allowCredentials || []).forEach((c) => { c.id = bytes(c.id); });
    const got = await navigator.credentials.get({ publicKey: options });
    return {
      id: got.id,
      rawId: text(got.rawId),
      type: got.type,
      response: {
        clientDataJSON: text(got.response.clientDataJSON),
        authenticatorData: text(got.response.authenticatorData),
        signature: text(got.response.signature),
        userHandle: got.response.userHandle ? text(got.response.userHandle) : null,
      },
      clientExtensionResults: got.getClientExtensionResults(),
    };
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const options = JSON.parse(form.dataset.webauthn);
    try {
      const answer = form.dataset.webauthnMode === "register"
        ? await register(options) : await assert(options);
      form.elements.credential.value = JSON.stringify(answer);
      form.submit();
    } catch (error) {
      failed.hidden = false;
    }
  });
})();
