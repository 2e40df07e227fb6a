// certsvc console: this browser as a registered workstation.
// The key is ECDSA P-256, generated here NON-EXTRACTABLE by WebCrypto and kept in IndexedDB;
// only its public half leaves the browser (shown for an admin to register). Every form marked
// data-signed is sent with the four Certsvc-* headers over the same message the CLI signs
// (certsvc/workstations.py), the Authorization hash replaced by that of
// "Console-Session " + the page's CSRF token (certsvc/console/proof.py).
"use strict";
(() => {
  const DB = "certsvc-workstation";
  const STORE = "keys";
  const ID = "workstation";
  const BINDING = "Console-Session ";
  const encoder = new TextEncoder();

  function database() {
    return new Promise((resolve, reject) => {
      const opening = indexedDB.open(DB, 1);
      opening.onupgradeneeded = () => opening.result.createObjectStore(STORE);
      opening.onsuccess = () => resolve(opening.result);
      opening.onerror = () => reject(opening.error);
    });
  }

  async function stored(value) {
    const db = await database();
    return new Promise((resolve, reject) => {
      const store = db.transaction(STORE, value ? "readwrite" : "readonly").objectStore(STORE);
      const request = value ? store.put(value, ID) : store.get(ID);
      request.onsuccess = () => resolve(value || request.result || null);
      request.onerror = () => reject(request.error);
    });
  }

  const base64 = (bytes) => btoa(String.fromCharCode(...new Uint8Array(bytes)));
  const base64url = (bytes) =>
    base64(bytes).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");

  async function sha256hex(bytes) {
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
    return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  async function enrol(name) {
    const pair = await crypto.subtle.generateKey(
      { name: "ECDSA", namedCurve: "P-256" },
      false,
      ["sign", "verify"],
    );
    const spki = base64(await crypto.subtle.exportKey("spki", pair.publicKey));
    const point = await crypto.subtle.exportKey("raw", pair.publicKey);
    return stored({
      name,
      privateKey: pair.privateKey,
      pem: `-----BEGIN PUBLIC KEY-----\n${spki.match(/.{1,64}/g).join("\n")}\n-----END PUBLIC KEY-----\n`,
      fingerprint: (await sha256hex(point)).slice(0, 16),
    });
  }

  async function signedFetch(path, body, csrf) {
    const key = await stored();
    if (!key) throw new Error("此浏览器尚未登记为工作站 / this browser is not enrolled as a workstation");
    const timestamp = String(Math.floor(Date.now() / 1000));
    const nonce = base64url(crypto.getRandomValues(new Uint8Array(18)));
    const bytes = encoder.encode(body);
    const message = [
      "certsvc-request-v1", "POST", path, timestamp, nonce, key.name,
      await sha256hex(bytes), await sha256hex(encoder.encode(BINDING + csrf)),
    ].join("\n");
    const signature = await crypto.subtle.sign(
      { name: "ECDSA", hash: "SHA-256" }, key.privateKey, encoder.encode(message),
    );
    return fetch(path, {
      method: "POST",
      body: bytes,
      credentials: "same-origin",
      headers: {
        "Content-Type": "application/x-www-form-urlencoded",
        "Certsvc-Workstation": key.name,
        "Certsvc-Timestamp": timestamp,
        "Certsvc-Nonce": nonce,
        "Certsvc-Signature": base64url(signature),
      },
    });
  }

  const status = () => document.getElementById("action-status");

  function say(text, failed) {
    status().textContent = text;
    status().className = failed ? "error" : "";
  }

  async function answer(response) {
    if (response.ok) return response;
    const body = await response.json().catch(() => ({}));
    throw new Error(typeof body.detail === "string" ? body.detail : `HTTP ${response.status}`);
  }

  function fields(form, extra) {
    const data = new URLSearchParams(new FormData(form));
    for (const [name, value] of Object.entries(extra || {})) data.set(name, value);
    return data.toString();
  }

  async function issueAll(form, csrf) {
    const ids = form.dataset.applications.split(",").filter(Boolean);
    const bar = form.querySelector("progress");
    bar.max = ids.length;
    bar.value = 0;
    for (const id of ids) {
      await answer(await signedFetch(form.getAttribute("action"), fields(form, { application: id }), csrf));
      bar.value += 1;
      say(`已发证 ${bar.value} / ${ids.length} issued`);
    }
    location.assign("/console/custodian?done=issued-" + ids.length);
  }

  async function download(form, csrf) {
    const response = await answer(await signedFetch(form.getAttribute("action"), fields(form), csrf));
    const link = document.createElement("a");
    link.href = URL.createObjectURL(await response.blob());
    link.download = `${form.elements.number.value}.pdf`;
    document.body.append(link);
    link.click();
    link.remove();
    say(`已下载 ${link.download} downloaded`);
  }

  // The reveal's answer: the values drawn as text into this page, the form emptied; nothing
  // kept in the URL, the history or storage.
  async function reveal(form, csrf) {
    const response = await answer(await signedFetch(form.getAttribute("action"), fields(form), csrf));
    const rows = (await response.json()).values.map(({ token, kind, value }) => {
      const row = document.createElement("tr");
      for (const text of [token, kind, value]) row.insertCell().textContent = text;
      row.cells[2].className = "revealed-value";
      return row;
    });
    document.querySelector("#revealed tbody").replaceChildren(...rows);
    document.getElementById("revealed").hidden = false;
    form.reset();
    say("已显示 / revealed");
  }

  async function submit(form) {
    const csrf = form.elements.csrf.value;
    const busy = form.querySelector("progress");
    if (busy) busy.hidden = false;
    try {
      if (form.dataset.applications !== undefined) return await issueAll(form, csrf);
      if (form.dataset.download !== undefined) return await download(form, csrf);
      if (form.dataset.reveal !== undefined) return await reveal(form, csrf);
      const body = fields(form);
      if (form.elements.pin) form.elements.pin.value = "";
      const response = await answer(await signedFetch(form.getAttribute("action"), body, csrf));
      location.assign((await response.json()).next);
    } catch (error) {
      say(error.message, true);
    } finally {
      if (busy && form.dataset.applications === undefined) busy.hidden = true;
    }
  }

  function show(key) {
    document.getElementById("ws-state").hidden = !key;
    document.getElementById("enrol").hidden = Boolean(key);
    if (!key) return;
    document.getElementById("ws-name").textContent = key.name;
    document.getElementById("ws-fingerprint").textContent = key.fingerprint;
    document.getElementById("ws-public-key").textContent = key.pem;
  }

  document.addEventListener("DOMContentLoaded", async () => {
    for (const form of document.querySelectorAll("form[data-signed]")) {
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        submit(form);
      });
    }
    const enrolment = document.getElementById("enrol");
    enrolment.addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        show(await enrol(enrolment.elements.name.value.trim()));
      } catch (error) {
        say(error.message, true);
      }
    });
    show(await stored());
  });
})();
