// The chat page of `make local`: talks to the local server's /api, never to the handler.
// Sending goes through a signed webhook delivery; replies come from the simulator's outbox.
// What a person sees before writing (greeting, ice breakers or Get Started) and the persistent
// menu come from the page's Messenger profile, read from the simulator (/api/profile).
"use strict";

const TYPING_TIMEOUT_MS = 20000; // Messenger drops a typing indicator after about 20 s
const POLL_SECONDS = 25;
const GET_STARTED_TITLE = "Get Started"; // the postback title Messenger sends with the payload

const state = {
  config: null,
  page: { name: "Local Page" },
  profile: {}, // the page's Messenger profile: get_started, greeting, ice_breakers, persistent_menu
  users: [],
  psid: null,
  generation: 0, // bumped by every select(): late answers for an earlier choice are dropped
  seq: 0,
  composerOn: false, // a person is chosen and their conversation is on screen
  composerLocked: false, // the profile's persistent menu turns typing off
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

// -- the page and its Messenger profile ------------------------------------------------------

function initials(name) {
  const words = (name || "").split(/\s+/).filter(Boolean);
  return (words.length > 1 ? words[0][0] + words[1][0] : (words[0] || "?").slice(0, 2)).toUpperCase();
}

// Messenger shows the entry for the person's locale, else the default one.
function forLocale(entries) {
  if (!Array.isArray(entries) || entries.length === 0) return null;
  const mine = (navigator.language || "").replace("-", "_").toLowerCase();
  return (
    entries.find((e) => (e.locale || "").toLowerCase() === mine) ||
    entries.find((e) => e.locale === "default") ||
    entries[0]
  );
}

function showPage() {
  const name = state.page.name || state.config?.page?.name || "Page";
  for (const el of document.querySelectorAll(".page-name")) el.textContent = name;
  for (const el of document.querySelectorAll(".page-avatar")) el.textContent = initials(name);
}

async function loadProfile() {
  try {
    const found = await api("profile");
    state.page = found.page;
    state.profile = found.profile || {}; // none: no Get Started, no menu, as on Messenger
  } catch (error) {
    // The server is gone or the simulator refused: keep showing what was read last.
  }
  showPage();
  renderMenu();
  renderWelcome();
}

// Messenger's personalisation tags; the page shows the person's name as chosen here.
function personalise(text, name) {
  return text
    .replaceAll("{{user_first_name}}", name)
    .replaceAll("{{user_full_name}}", name)
    .replaceAll("{{user_last_name}}", "");
}

function iceBreakers() {
  const breakers = state.profile.ice_breakers;
  if (!Array.isArray(breakers)) return [];
  if (breakers.length && breakers[0].question !== undefined) return breakers; // the old flat form
  return forLocale(breakers)?.call_to_actions || [];
}

// The welcome screen: what Messenger shows a person who has not written to the page yet, with
// the ice breakers to tap or, when there are none, the Get Started button.
function renderWelcome() {
  const empty = $("messages").children.length === 0;
  $("welcome").hidden = !empty;
  if (!empty) return;
  const me = person(state.psid);
  const greeting = forLocale(state.profile.greeting);
  $("greeting").hidden = !greeting;
  $("greeting").textContent = greeting ? personalise(greeting.text || "", me ? me.name : "") : "";
  const list = $("ice-breakers");
  list.replaceChildren();
  for (const breaker of iceBreakers()) {
    const li = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "ice-breaker";
    button.textContent = breaker.question;
    button.addEventListener("click", () => tap(breaker.payload, breaker.question, "postback"));
    li.append(button);
    list.append(li);
  }
  list.hidden = list.children.length === 0;
  // Ice breakers set by the API take precedence over the Get Started button (Meta's "Page
  // Profile Priority"): a real page shows one or the other, never both.
  $("get-started").hidden = !state.profile.get_started || !list.hidden;
  applyComposer();
}

// The persistent menu: postbacks go through the webhook, web links open in a new tab.
function renderMenu() {
  const menu = forLocale(state.profile.persistent_menu);
  const actions = (menu?.call_to_actions || []).filter((a) => a.type === "postback" || a.type === "web_url");
  const list = $("menu");
  list.replaceChildren();
  for (const action of actions) {
    const li = document.createElement("li");
    li.setAttribute("role", "none");
    let item;
    if (action.type === "web_url") {
      item = document.createElement("a");
      item.href = action.url;
      item.target = "_blank";
      item.rel = "noopener noreferrer";
      item.className = "web";
      item.addEventListener("click", closeMenu);
    } else {
      item = document.createElement("button");
      item.type = "button";
      item.addEventListener("click", () => {
        closeMenu();
        tap(action.payload, action.title, "postback");
      });
    }
    item.setAttribute("role", "menuitem");
    item.textContent = action.title;
    li.append(item);
    list.append(li);
  }
  $("menu-button").hidden = actions.length === 0;
  if (actions.length === 0) closeMenu();
  // A page may turn typing off (composer_input_disabled): then only the menu talks to it.
  state.composerLocked = Boolean(menu?.composer_input_disabled);
  $("text").placeholder = state.composerLocked ? "This page takes the menu's choices only" : "Aa";
  applyComposer();
}

function closeMenu() {
  $("menu").hidden = true;
  $("menu-button").setAttribute("aria-expanded", "false");
}

// -- people --------------------------------------------------------------------------------

function person(psid) {
  return state.users.find((u) => u.psid === psid);
}

function describeUsage(u) {
  if (!u) return "";
  if (u.admin) return "Owner: no daily limit";
  if (u.pausedUntil) {
    const until = new Date(u.pausedUntil * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    return `A person of the page is answering: the bot keeps quiet until ${until}`;
  }
  if (u.status === "blocked") return "Blocked by the owner";
  if (u.limit === null || u.limit === undefined) return `No daily limit · ${u.used} asked today`;
  const left = u.left === 1 ? "1 question" : `${u.left} questions`;
  return `${left} left today (of ${u.limit})`;
}

function badge(u) {
  if (u.admin) return ["Owner", "owner"];
  if (u.status === "blocked") return ["Blocked", "blocked"];
  if (u.pausedUntil) return ["With a person", "paused"];
  if (u.status === "unlimited") return ["Unlimited", "unlimited"];
  if (!u.seen) return ["New", "new"];
  return [`${u.used}/${u.limit} today`, u.left === 0 ? "spent" : "default"];
}

function renderPeople() {
  const list = $("people");
  list.replaceChildren();
  let chosen = null;
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
    if (u.psid === state.psid) chosen = button;
  }
  // On a phone the people are one scrolling row: keep the chosen person in sight.
  const row = list.closest(".people");
  if (chosen && row.scrollWidth > row.clientWidth) {
    row.scrollLeft += chosen.getBoundingClientRect().left - row.getBoundingClientRect().left - 12;
  }
  const me = person(state.psid);
  $("page-reply").hidden = !me || me.admin || state.config?.mode === "real";
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

// Scrolled to the end, the conversation stays at its end when its box shrinks (a banner or a
// wrapped connection note above, the quick replies or the phone's keyboard below).
function keepAtEnd() {
  const scroller = $("scroller");
  let atEnd = true;
  scroller.addEventListener("scroll", () => {
    atEnd = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 8;
  });
  new ResizeObserver(() => {
    if (atEnd) scrollDown();
  }).observe(scroller);
}

// Messenger groups a side's consecutive messages: the corners between them are tight, and
// the page's avatar shows once, beside the last bubble of each of its groups.
function regroup() {
  const items = [...$("messages").children];
  const side = (li) => (li && li.classList.contains("me") ? "me" : li ? "bot" : null);
  items.forEach((li, i) => {
    li.classList.toggle("group-start", side(items[i - 1]) !== side(li));
    li.classList.toggle("group-end", side(items[i + 1]) !== side(li));
  });
}

function bubble(side, extraClass) {
  const li = document.createElement("li");
  li.className = `msg ${side}${extraClass ? ` ${extraClass}` : ""}`;
  if (side === "bot") {
    const avatar = document.createElement("span");
    avatar.className = "avatar tiny page-avatar";
    avatar.setAttribute("aria-hidden", "true");
    avatar.textContent = initials(state.page.name);
    const body = document.createElement("div");
    body.className = "msg-body";
    li.append(avatar, body);
  }
  $("messages").append(li);
  regroup();
  renderWelcome();
  return li;
}

// Where a message's bubbles go: beside the avatar for the page's, in the item for the person's.
function bodyOf(li) {
  return li.querySelector(".msg-body") || li;
}

// A typed message, a tapped button, quick reply, menu item or ice breaker alike: the person's
// blue bubble with the text or the button's title, as Messenger shows them.
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
  scrollDown(); // the note is below what was in sight
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
  scrollDown();
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

function renderAttachment(body, attachment) {
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
      body.append(card);
    }
    return;
  }
  const p = document.createElement("p");
  p.className = "bubble";
  p.textContent = `[${attachment.type}${payload.url ? `: ${payload.url}` : ""}]`;
  body.append(p);
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
  const byHand = item.by === "page"; // typed in the Page Inbox, not sent by the bot
  const li = bubble("bot", byHand ? "by-hand" : "");
  const body = bodyOf(li);
  body.title = new Date(item.time * 1000).toLocaleTimeString();
  if (typeof message.text === "string") {
    const p = document.createElement("p");
    p.className = "bubble";
    p.textContent = message.text;
    body.append(p);
  }
  if (byHand) {
    const note = document.createElement("p");
    note.className = "by-hand-note";
    note.textContent = "Sent by hand by the page";
    body.append(note);
  }
  if (message.attachment) renderAttachment(body, message.attachment);
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
  renderWelcome();
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
  state.composerOn = enabled;
  applyComposer();
}

function applyComposer() {
  const on = state.composerOn;
  $("text").disabled = !on || state.composerLocked;
  $("send").disabled = !on || state.composerLocked;
  $("get-started").disabled = !on;
  $("menu-button").disabled = !on;
  for (const button of $("ice-breakers").querySelectorAll("button")) button.disabled = !on;
}

async function select(psid) {
  if (state.poll) state.poll.abort();
  const generation = ++state.generation;
  state.psid = psid;
  state.seq = 0;
  localStorage.setItem("psid", psid);
  closeMenu();
  setComposer(false); // until this person's conversation is on screen
  renderPeople();
  const controller = new AbortController();
  state.poll = controller;
  try {
    await loadProfile(); // what the simulator holds now, as Messenger reads it
    if (!(await loadHistory(psid, generation))) return;
  } catch (error) {
    setConnection(false, `Cannot load the conversation: ${error.message}`);
    return;
  }
  pollLoop(psid, controller);
  setComposer(true);
  if (!state.composerLocked) $("text").focus();
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

// Someone of the page answers by hand: the simulator shows it to the person and sends its echo
// to the webhook, as Messenger does; the poll brings it into the conversation.
async function replyAsPage(text) {
  try {
    await api("reply", { body: { psid: state.psid, text } });
  } catch (error) {
    setConnection(false, `Replying as the page failed: ${error.message}`);
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
  $("page-reply").addEventListener("submit", (event) => {
    event.preventDefault();
    const field = $("page-reply-text");
    const text = field.value.trim();
    if (!text || !state.psid) return;
    field.value = "";
    replyAsPage(text);
  });
  $("new-user").addEventListener("click", () => addPerson(null));
  $("as-owner").addEventListener("click", () => select(state.config.owner));
  $("pick-psid").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("psid-input").value.trim();
    $("psid-input").value = "";
    addPerson(value).catch((error) => setConnection(false, error.message));
  });
  // Facebook sends the Get Started tap as a postback titled "Get Started" with the payload
  // the profile's get_started names.
  $("get-started").addEventListener("click", () => {
    const payload = state.profile.get_started?.payload;
    if (payload) tap(payload, GET_STARTED_TITLE, "postback");
  });
  $("menu-button").addEventListener("click", () => {
    const open = $("menu").hidden;
    $("menu").hidden = !open;
    $("menu-button").setAttribute("aria-expanded", String(open));
    if (open) $("menu").querySelector("[role=menuitem]")?.focus();
  });
  $("menu").addEventListener("keydown", (event) => {
    if (event.key !== "ArrowDown" && event.key !== "ArrowUp") return;
    event.preventDefault();
    const items = [...$("menu").querySelectorAll("[role=menuitem]")];
    const at = items.indexOf(document.activeElement);
    const step = event.key === "ArrowDown" ? 1 : -1;
    items[(at + step + items.length) % items.length]?.focus();
  });
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
  state.page = { ...config.page };
  showPage();
  $("webhook-url").textContent = `${location.origin}${config.webhook}`;
  document.body.classList.toggle("real-graph", config.mode === "real");
}

async function start() {
  wireControls();
  keepAtEnd();
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
