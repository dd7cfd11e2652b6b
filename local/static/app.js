// The chat page of `make local`: talks to the local server's /api, never to the handler.
// Sending goes through a signed webhook delivery; replies come from the simulator's outbox.
"use strict";

const TYPING_TIMEOUT_MS = 20000; // Messenger drops a typing indicator after about 20 s
const POLL_SECONDS = 25;

const state = {
  config: null,
  users: [],
  psid: null,
  generation: 0, // bumped by every select(): late answers for an earlier choice are dropped
  seq: 0,
  poll: null, // AbortController of the running long-poll
  typingTimer: null,
  usageTimer: null,
};

const $ = (id) => document.getElementById(id);

// -- server calls --------------------------------------------------------------------------

async function api(path, options = {}) {
  const init = { ...options, headers: { Accept: "application/json" } };
  if (options.body !== undefined) {
    init.method = "POST";
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(options.body);
  }
  const response = await fetch(`/api/${path}`, init);
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new Error(data.error || `${response.status} ${response.statusText}`);
  }
  return data;
}

function setConnection(ok, text) {
  const el = $("connection");
  el.textContent = text;
  el.classList.toggle("down", !ok);
}

// -- people --------------------------------------------------------------------------------

function person(psid) {
  return state.users.find((u) => u.psid === psid);
}

function describeUsage(u) {
  if (!u) return "";
  if (u.admin) return "Owner: no daily limit";
  if (u.status === "blocked") return "Blocked by the owner";
  if (u.limit === null || u.limit === undefined) return `No daily limit · ${u.used} asked today`;
  const left = u.left === 1 ? "1 question" : `${u.left} questions`;
  return `${left} left today (of ${u.limit})`;
}

function badge(u) {
  if (u.admin) return ["Owner", "owner"];
  if (u.status === "blocked") return ["Blocked", "blocked"];
  if (u.status === "unlimited") return ["Unlimited", "unlimited"];
  if (!u.seen) return ["New", "new"];
  return [`${u.used}/${u.limit} today`, u.left === 0 ? "spent" : "default"];
}

function renderPeople() {
  const list = $("people");
  list.replaceChildren();
  for (const u of state.users) {
    const li = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "person";
    button.dataset.psid = u.psid;
    button.setAttribute("aria-pressed", String(u.psid === state.psid));
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = u.name;
    const id = document.createElement("span");
    id.className = "psid";
    id.textContent = u.psid;
    const [label, kind] = badge(u);
    const tag = document.createElement("span");
    tag.className = `badge ${kind}`;
    tag.textContent = label;
    button.append(name, tag, id);
    button.addEventListener("click", () => select(u.psid));
    li.append(button);
    list.append(li);
  }
  const me = person(state.psid);
  $("chat-sub").textContent = me ? `You are ${me.name} · PSID ${me.psid}` : "";
  $("quota").textContent = describeUsage(me);
  $("chat-sub").closest(".chat").dataset.psid = state.psid || "";
}

async function refreshUsers() {
  try {
    state.users = (await api("users")).users;
    renderPeople();
  } catch (error) {
    setConnection(false, `Cannot reach the local server: ${error.message}`);
  }
}

function refreshUsersSoon() {
  clearTimeout(state.usageTimer);
  state.usageTimer = setTimeout(refreshUsers, 150);
}

async function addPerson(psid) {
  setComposer(false);
  const made = await api("users", { body: psid ? { psid } : {} });
  await refreshUsers();
  await select(made.psid);
}

// -- the conversation ----------------------------------------------------------------------

function scrollDown() {
  const scroller = $("scroller");
  scroller.scrollTop = scroller.scrollHeight;
}

function updateEmpty() {
  const empty = $("messages").children.length === 0;
  $("empty").hidden = !empty;
}

function bubble(side, extraClass) {
  const li = document.createElement("li");
  li.className = `msg ${side}${extraClass ? ` ${extraClass}` : ""}`;
  $("messages").append(li);
  updateEmpty();
  return li;
}

function addUserBubble(text, kind, when) {
  const li = bubble("me", kind !== "text" ? "tapped" : "");
  const p = document.createElement("p");
  p.className = "bubble";
  p.textContent = text;
  if (when) p.title = new Date(when * 1000).toLocaleTimeString();
  li.append(p);
  scrollDown();
  return li;
}

function markDelivery(li, result) {
  if (result.ok) return;
  li.classList.add("failed");
  const note = document.createElement("p");
  note.className = "note";
  note.textContent = result.status
    ? `Not delivered: the webhook answered ${result.status}`
    : "Not delivered: the server did not answer";
  li.append(note);
}

function markSeen() {
  for (const old of document.querySelectorAll(".msg.me .seen")) old.remove();
  const mine = $("messages").querySelectorAll(".msg.me");
  const last = mine[mine.length - 1];
  if (!last) return;
  const seen = document.createElement("p");
  seen.className = "seen";
  seen.textContent = "Seen";
  last.append(seen);
}

function showTyping(on) {
  clearTimeout(state.typingTimer);
  $("typing").hidden = !on;
  if (on) {
    state.typingTimer = setTimeout(() => showTyping(false), TYPING_TIMEOUT_MS);
    scrollDown();
  }
}

function buttonFor(spec) {
  if (spec.type === "web_url" && spec.url) {
    const a = document.createElement("a");
    a.className = "card-button";
    a.href = spec.url;
    a.target = "_blank";
    a.rel = "noopener noreferrer";
    a.textContent = spec.title || spec.url;
    return a;
  }
  const button = document.createElement("button");
  button.type = "button";
  button.className = "card-button";
  button.textContent = spec.title || spec.payload || "Button";
  if (spec.type === "postback" && spec.payload) {
    button.addEventListener("click", () => tap(spec.payload, spec.title || "", "postback"));
  } else {
    button.disabled = true;
    button.title = `${spec.type} buttons do nothing here`;
  }
  return button;
}

function renderAttachment(li, attachment) {
  const payload = attachment.payload || {};
  if (attachment.type === "template") {
    const cards =
      payload.template_type === "generic"
        ? payload.elements || []
        : [{ title: payload.text, buttons: payload.buttons || [] }];
    for (const element of cards) {
      const card = document.createElement("div");
      card.className = "card";
      const text = document.createElement("p");
      text.className = "card-text";
      text.textContent = element.title || "";
      card.append(text);
      if (element.subtitle) {
        const sub = document.createElement("p");
        sub.className = "card-sub";
        sub.textContent = element.subtitle;
        card.append(sub);
      }
      const buttons = document.createElement("div");
      buttons.className = "card-buttons";
      for (const spec of element.buttons || []) buttons.append(buttonFor(spec));
      card.append(buttons);
      li.append(card);
    }
    return;
  }
  const p = document.createElement("p");
  p.className = "bubble";
  p.textContent = `[${attachment.type}${payload.url ? `: ${payload.url}` : ""}]`;
  li.append(p);
}

function renderQuickReplies(replies) {
  const box = $("quick-replies");
  box.replaceChildren();
  for (const reply of replies || []) {
    const chip = document.createElement("button");
    chip.type = "button";
    chip.className = "chip";
    chip.textContent = reply.title || reply.content_type || "Reply";
    if (reply.content_type === "text" || reply.payload) {
      chip.addEventListener("click", () => tap(reply.payload || "", reply.title || "", "quick_reply"));
    } else {
      chip.disabled = true;
    }
    box.append(chip);
  }
}

function addBotMessage(item) {
  const message = item.message || {};
  const li = bubble("bot");
  li.title = new Date(item.time * 1000).toLocaleTimeString();
  if (typeof message.text === "string") {
    const p = document.createElement("p");
    p.className = "bubble";
    p.textContent = message.text;
    li.append(p);
  }
  if (message.attachment) renderAttachment(li, message.attachment);
  renderQuickReplies(message.quick_replies);
  scrollDown();
}

function applyBotItem(item, live) {
  if (item.kind === "sender_action") {
    if (item.action === "typing_on") showTyping(live || Date.now() / 1000 - item.time < 20);
    else if (item.action === "typing_off") showTyping(false);
    else if (item.action === "mark_seen") markSeen();
    return;
  }
  showTyping(false);
  addBotMessage(item);
}

async function loadHistory(psid, generation) {
  const history = await api(`history?psid=${psid}`);
  if (generation !== state.generation) return false;
  $("messages").replaceChildren();
  renderQuickReplies([]);
  showTyping(false);
  for (const item of history.items) {
    if (item.from === "user") {
      const li = addUserBubble(item.text, item.kind, item.time);
      if (item.status !== undefined) markDelivery(li, { ok: item.status === 200, status: item.status });
    } else {
      applyBotItem(item, false);
    }
  }
  state.seq = history.seq;
  updateEmpty();
  scrollDown();
  return true;
}

async function pollLoop(psid, controller) {
  while (!controller.signal.aborted) {
    try {
      const url = `poll?psid=${psid}&after=${state.seq}&timeout=${POLL_SECONDS}`;
      const answer = await api(url, { signal: controller.signal });
      if (controller.signal.aborted) return;
      setConnection(true, "Connected to the local bridge");
      for (const item of answer.items) applyBotItem(item, true);
      state.seq = Math.max(state.seq, answer.seq);
      if (answer.items.some((item) => item.kind === "message")) refreshUsersSoon();
    } catch (error) {
      if (controller.signal.aborted) return;
      setConnection(false, "Disconnected: is `make local` still running?");
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
}

function setComposer(enabled) {
  $("text").disabled = !enabled;
  $("send").disabled = !enabled;
  $("get-started").disabled = !enabled;
}

async function select(psid) {
  if (state.poll) state.poll.abort();
  const generation = ++state.generation;
  state.psid = psid;
  state.seq = 0;
  localStorage.setItem("psid", psid);
  setComposer(false); // until this person's conversation is on screen
  renderPeople();
  const controller = new AbortController();
  state.poll = controller;
  try {
    if (!(await loadHistory(psid, generation))) return;
  } catch (error) {
    setConnection(false, `Cannot load the conversation: ${error.message}`);
    return;
  }
  pollLoop(psid, controller);
  setComposer(true);
  $("text").focus();
}

// -- what the person does ------------------------------------------------------------------

async function send(text) {
  renderQuickReplies([]);
  const li = addUserBubble(text, "text", Date.now() / 1000);
  try {
    markDelivery(li, await api("send", { body: { psid: state.psid, text } }));
  } catch (error) {
    markDelivery(li, { ok: false, status: 0 });
    setConnection(false, `Sending failed: ${error.message}`);
  }
  refreshUsersSoon();
}

async function tap(payload, title, kind) {
  renderQuickReplies([]);
  const li = addUserBubble(title || payload, kind, Date.now() / 1000);
  try {
    markDelivery(li, await api("tap", { body: { psid: state.psid, payload, title, kind } }));
  } catch (error) {
    markDelivery(li, { ok: false, status: 0 });
  }
  refreshUsersSoon();
}

function closeMenu() {
  $("menu").hidden = true;
  $("menu-button").setAttribute("aria-expanded", "false");
}

function wireControls() {
  const input = $("text");
  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text || !state.psid) return;
    input.value = "";
    input.style.height = "";
    send(text);
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("composer").requestSubmit();
    }
  });
  input.addEventListener("input", () => {
    input.style.height = "";
    input.style.height = `${Math.min(input.scrollHeight, 160)}px`;
  });
  $("new-user").addEventListener("click", () => addPerson(null));
  $("as-owner").addEventListener("click", () => select(state.config.owner));
  $("pick-psid").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("psid-input").value.trim();
    $("psid-input").value = "";
    addPerson(value).catch((error) => setConnection(false, error.message));
  });
  $("get-started").addEventListener("click", () => tap("GET_STARTED", "Get Started", "postback"));
  $("menu-button").addEventListener("click", () => {
    const open = $("menu").hidden;
    $("menu").hidden = !open;
    $("menu-button").setAttribute("aria-expanded", String(open));
    if (open) $("menu").querySelector("button").focus();
  });
  for (const item of $("menu").querySelectorAll("button")) {
    item.addEventListener("click", () => {
      closeMenu();
      tap(item.dataset.payload, item.textContent, "postback");
    });
  }
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !$("menu").hidden) {
      closeMenu();
      $("menu-button").focus();
    }
  });
  document.addEventListener("click", (event) => {
    if (!event.target.closest(".menu")) closeMenu();
  });
}

function showConfig(config) {
  const banner = $("banner");
  const notes = [];
  if (config.mode === "real") {
    notes.push(
      "This run uses the real Graph API: chat with your page in Messenger. " +
        "The chat page is off, since replies would go to real people.",
    );
  }
  if (config.model.offline) {
    notes.push("Offline echo model: set OPENAI_API_KEY for real answers.");
  } else {
    notes.push(`Model: ${config.model.label}.`);
  }
  banner.textContent = notes.join(" ");
  banner.classList.toggle("offline", config.model.offline);
  banner.hidden = false;
  $("tip-long").hidden = !config.longAnswerWords;
  $("chat-title").textContent = config.page.name;
  $("empty-name").textContent = config.page.name;
  $("webhook-url").textContent = `${location.origin}${config.webhook}`;
  document.body.classList.toggle("real-graph", config.mode === "real");
}

async function start() {
  wireControls();
  try {
    state.config = await api("config");
  } catch (error) {
    setConnection(false, `Cannot reach the local server: ${error.message}`);
    return;
  }
  showConfig(state.config);
  setConnection(true, "Connected to the local bridge");
  await refreshUsers();
  if (state.config.mode === "real" || state.psid) return; // already picked by hand
  const saved = localStorage.getItem("psid");
  const known = saved && person(saved);
  if (known) {
    await select(saved);
  } else {
    const firstGuest = state.users.find((u) => !u.admin);
    if (firstGuest) await select(firstGuest.psid);
    else await addPerson(null);
  }
}

document.addEventListener("DOMContentLoaded", start);
