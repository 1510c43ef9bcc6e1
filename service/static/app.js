// The page's behaviour: sign in once (the server sets an HttpOnly cookie), upload a book, and keep the
// list and a book's status up to date without reloading. User text goes in with textContent only.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);

async function call(method, url, body) {
  const response = await fetch(url, { method, body, credentials: "same-origin" });
  let data = {};
  try { data = await response.json(); } catch (e) { data = {}; }
  return { ok: response.ok, status: response.status, data };
}

function el(tag, attrs = {}, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== null && v !== undefined) node.setAttribute(k, v);
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

function progressText(book) {
  const p = book.progress;
  if (!p || !p.chunks_total) return "";
  let text = `${p.chunks_done}/${p.chunks_total} chunks`;
  if (p.eta_s !== null && p.eta_s !== undefined) text += `, about ${Math.round(p.eta_s)} s left`;
  return text;
}

function bookRow(book) {
  const li = el("li", { class: "book", "data-book": book.name });
  li.append(book.cover_url ? el("img", { class: "thumb", src: book.cover_url, alt: "", loading: "lazy" })
                           : el("span", { class: "thumb" }));
  const about = el("div", { class: "about" });
  about.append(el("a", { class: "title", href: book.page_url }, book.title), " ",
               el("small", { class: "author" }, book.author), " ", el("small", { class: "name" }, book.name));
  const line = el("div");
  line.append(el("span", { class: `status ${book.status}` }, book.status), " ",
              el("span", { class: "progress" }, progressText(book)));
  if (book.ui_url) line.append(" ", el("a", { class: "run", href: book.ui_url }, "run"));
  about.append(line);
  if (book.status === "failed") {
    const failure = el("div", { class: "failure" });
    failure.append(el("small", { class: "message" }, book.message || ""), " ",
                   el("button", { type: "button", class: "retry", "data-book": book.name }, "Retry"));
    about.append(failure);
  }
  const files = el("ul", { class: "files" });
  for (const url of book.files) {
    const li2 = el("li");
    li2.append(el("a", { href: url }, decodeURIComponent(url.split("/download/")[1])));
    files.append(li2);
  }
  about.append(files);
  li.append(about);
  return li;
}

async function refreshList() {
  const list = $("#books");
  if (!list) return;
  const r = await call("GET", "/books");
  if (!r.ok) return;
  const items = r.data.length ? r.data.map(bookRow) : [el("li", { class: "empty" }, "No books yet.")];
  list.replaceChildren(...items);
}

async function refreshBook() {
  const article = $("#book");
  if (!article) return;
  const r = await call("GET", `/books/${encodeURIComponent(article.dataset.book)}`);
  if (!r.ok) return;
  const status = $("#status");
  const before = status.textContent;
  status.textContent = r.data.status;
  status.className = `status ${r.data.status}`;
  $("#progress").textContent = progressText(r.data);
  if (before !== r.data.status && ["completed", "failed"].includes(r.data.status)) location.reload();
}

function fillVoices() {
  const engine = $("#engine"), voice = $("#voice"), list = $("#voices");
  if (!engine || !engine.selectedOptions.length) return;
  const voices = (engine.selectedOptions[0].dataset.voices || "").split(",").filter(Boolean);
  list.replaceChildren(...voices.map((v) => el("option", { value: v })));
  if (!voices.includes(voice.value)) voice.value = engine.selectedOptions[0].dataset.default || voices[0] || "";
}

async function inspectDocument() {
  const file = $("#document").files[0];
  if (!file || /\.(yaml|yml|zip)$/i.test(file.name)) return;
  const body = new FormData();
  body.append("file", file);
  const r = await call("POST", "/inspect", body);
  if (!r.ok) { $("#upload-result").textContent = `cannot read it: ${r.data.error || r.status}`; return; }
  if (r.data.title && !$("#title").value) $("#title").value = r.data.title;
  if (r.data.author && !$("#author").value) $("#author").value = r.data.author;
}

async function upload(event) {
  event.preventDefault();
  const out = $("#upload-result");
  const body = new FormData();
  const doc = $("#document").files[0];
  if (/\.ya?ml$/i.test(doc.name)) body.append("manifest", doc); else body.append("file", doc);
  for (const f of $("#cover").files) body.append("file", f);
  for (const f of $("#clips").files) body.append("file", f);
  for (const id of ["title", "author", "narrator", "engine", "voice", "quality"]) {
    const v = $(`#${id}`).value.trim();
    if (v) body.append(id, v);
  }
  if ($("#overwrite").checked) body.append("overwrite", "true");
  out.textContent = "uploading...";
  const r = await call("POST", "/books", body);
  out.textContent = r.ok ? `queued ${r.data.name}` : `refused: ${r.data.error || r.status}`;
  if (r.ok) { event.target.reset(); fillVoices(); refreshList(); }
}

// Read-along: under a chapter's player, its sentences (the cues of the chapter's WebVTT captions, loaded
// by the <track> element), the one being spoken marked. Marked by time, so a seek moves the mark at once
// and, in the pause after a sentence, it stays on that sentence. A click on a sentence plays from it.
function readAlong(audio) {
  const track = audio.querySelector("track");
  const box = audio.parentElement.querySelector(".read-along");
  if (!track || !box) return;
  track.track.mode = "hidden";  // load the cues without drawing them over anything
  let cues = [], spans = [], current = -1;
  const build = () => {
    const list = track.track.cues;
    if (cues.length || !list || !list.length) return;
    cues = Array.from(list);
    spans = cues.map((cue) => {
      const span = el("span", { class: "sentence", "data-cue": cue.id }, cue.getCueAsHTML().textContent);
      span.addEventListener("click", () => { audio.currentTime = cue.startTime; audio.play(); });
      return span;
    });
    box.replaceChildren(...spans.flatMap((span) => [span, " "]));
    box.hidden = false;
    mark();
  };
  const mark = () => {
    const now = audio.currentTime;
    let i = -1;
    for (let lo = 0, hi = cues.length - 1; lo <= hi;) {  // the last cue that starts at or before now
      const mid = (lo + hi) >> 1;
      if (cues[mid].startTime <= now + 1e-3) { i = mid; lo = mid + 1; } else hi = mid - 1;
    }
    if (i === current) return;
    if (current >= 0) { spans[current].classList.remove("speaking"); spans[current].removeAttribute("aria-current"); }
    current = i;
    if (i < 0) return;
    spans[i].classList.add("speaking");
    spans[i].setAttribute("aria-current", "true");
    box.scrollTop = spans[i].offsetTop - box.clientHeight / 3;  // the box is the spans' offsetParent
  };
  track.addEventListener("load", build);
  build();
  for (const type of ["timeupdate", "seeked", "seeking", "play"]) audio.addEventListener(type, mark);
  track.track.addEventListener("cuechange", mark);
}

document.addEventListener("click", async (event) => {
  const button = event.target.closest("button.retry");
  if (!button) return;
  button.disabled = true;
  const r = await call("POST", `/books/${encodeURIComponent(button.dataset.book)}/retry`);
  if (!r.ok) { button.disabled = false; button.textContent = `Retry (${r.data.error || r.status})`; }
  refreshList(); refreshBook();
});

document.addEventListener("DOMContentLoaded", () => {
  const signIn = $("#sign-in");
  if (signIn) signIn.addEventListener("submit", async (event) => {
    event.preventDefault();
    const r = await call("POST", "/session", new FormData(signIn));
    if (r.ok) location.reload(); else $("#sign-in-result").textContent = r.data.error || "refused";
  });
  const signOut = $("#sign-out");
  if (signOut) signOut.addEventListener("click", async () => { await call("DELETE", "/session"); location.reload(); });
  const form = $("#upload");
  if (form) {
    form.addEventListener("submit", upload);
    $("#document").addEventListener("change", inspectDocument);
    $("#engine").addEventListener("change", fillVoices);
  }
  document.querySelectorAll("audio.chapter").forEach(readAlong);
  setInterval(() => { refreshList(); refreshBook(); }, 2000);
});
