// The console's shell: sign-in, navigation (hash routes), and the pages.
//
// Routes: #/things, #/things/NAME, #/mqtt, #/rules, #/fleet, #/cluster. Each page module's
// render(main, params) draws into <main> and may return a function that runs when the page
// is left (closing its MQTT connection, stopping its timers).

import * as api from "./api.js";
import { closeAll } from "./live.js";
import { h, replace, field, errorBox } from "./ui.js";
import * as things from "./pages/things.js";
import * as thing from "./pages/thing.js";
import * as mqttPage from "./pages/mqtt.js";
import * as rules from "./pages/rules.js";
import * as fleet from "./pages/fleet.js";
import * as cluster from "./pages/cluster.js";

const ROUTES = [
  [/^\/things$/, things.render, "Things", "#/things"],
  [/^\/things\/([^/]+)$/, thing.render, "Thing", "#/things"],
  [/^\/mqtt$/, mqttPage.render, "MQTT test client", "#/mqtt"],
  [/^\/rules$/, rules.render, "Rules", "#/rules"],
  [/^\/fleet$/, fleet.render, "Fleet", "#/fleet"],
  [/^\/cluster$/, cluster.render, "Cluster", "#/cluster"],
];

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const toggle = document.querySelector(".menu-toggle");
let leave = null;

/** The page a location hash names, with its parameters still URI-encoded. */
function routeOf(hash) {
  const path = hash.replace(/^#/, "").split("?")[0] || "/things";
  for (const [re, render, title, navHref] of ROUTES) {
    const m = re.exec(path === "/" ? "/things" : path);
    if (m) return { render, title, navHref, params: m.slice(1) };
  }
  return null;
}

function setMenu(open) {
  toggle.setAttribute("aria-expanded", String(open));
  nav.classList.toggle("open", open);
}

function show() {
  if (leave) {
    try {
      leave();
    } catch {
      /* a page that fails to clean up must not block the next */
    }
    leave = null;
  }
  setMenu(false);
  if (!api.currentKey()) {
    signInPage();
    return;
  }
  const route = routeOf(location.hash);
  for (const a of nav.querySelectorAll("a")) {
    if (route && a.getAttribute("href") === route.navHref) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  if (!route) {
    document.title = "Not found · Ferrite console";
    replace(main, h("h1", { tabindex: "-1" }, "Not found"), h("p", {}, "No page here. ", h("a", { href: "#/things" }, "Go to Things.")));
    return;
  }
  let name = "";
  try {
    name = route.params[0] ? decodeURIComponent(route.params[0]) : "";
  } catch {
    name = route.params[0];
  }
  document.title = `${name || route.title} · Ferrite console`;
  leave = route.render(main, route.params) || null;
  // Move focus to the new page's heading, so keyboard and screen-reader users start there.
  main.querySelector("h1")?.focus({ preventScroll: true });
}

function signInPage() {
  nav.hidden = true;
  toggle.hidden = true;
  document.title = "Sign in · Ferrite console";
  const ak = h("input", { id: "access-key-id", name: "accessKeyId", autocomplete: "off", spellcheck: "false", required: true, class: "mono" });
  const sk = h("input", { id: "secret-access-key", name: "secretAccessKey", type: "password", autocomplete: "off", required: true, class: "mono" });
  const status = h("div", { "aria-live": "polite" });
  const submit = h("button", { type: "submit" }, "Sign in");
  const form = h(
    "form",
    {
      class: "stack signin",
      onsubmit: async (ev) => {
        ev.preventDefault();
        replace(status);
        submit.disabled = true;
        try {
          await api.signIn(ak.value, sk.value);
          sk.value = "";
          signedIn();
        } catch (e) {
          const refused = e.status === 403;
          replace(status, errorBox(refused ? `The node refused this key (${e.message})` : e, refused ? "" : "Signing in"));
          if (refused) status.firstChild.dataset.refused = "true";
        } finally {
          submit.disabled = false;
        }
      },
    },
    field("Access key ID", ak),
    field("Secret access key", sk),
    h("div", { class: "actions" }, submit),
    status,
  );
  replace(
    main,
    h("div", { class: "signin-wrap" },
      h("h1", { tabindex: "-1" }, "Sign in"),
      h("p", {}, "Use an access key of this node: the root key is in ", h("code", {}, "DATA_DIR/credentials"),
        "; ", h("code", {}, "ferrite keys create"), " makes more."),
      form,
      h("p", { class: "hint" },
        "The console signs each API call in this browser with AWS Signature Version 4. The secret stays in this page's memory only: " +
        "it is never stored (no cookies or local storage) and never sent; reloading or closing the page signs you out.")),
  );
  ak.focus();
}

function signedIn() {
  nav.hidden = false;
  toggle.hidden = false;
  nav.querySelector(".key-id").textContent = api.currentKey().accessKeyId;
  if (!routeOf(location.hash) || !location.hash || location.hash === "#/") {
    history.replaceState(null, "", "#/things");
  }
  show();
}

function signOut() {
  api.signOut();
  closeAll();
  mqttPage.reset();
  if (leave) {
    leave();
    leave = null;
  }
  nav.querySelector(".key-id").textContent = "";
  show();
}

async function start() {
  document.querySelector(".sign-out").addEventListener("click", signOut);
  toggle.addEventListener("click", () => setMenu(toggle.getAttribute("aria-expanded") !== "true"));
  nav.addEventListener("click", (ev) => {
    if (ev.target.closest("a")) setMenu(false);
  });
  document.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape" && nav.classList.contains("open")) {
      setMenu(false);
      toggle.focus();
    }
  });
  // The skip link moves focus to the content without touching the route in the hash.
  document.querySelector(".skip-link").addEventListener("click", (ev) => {
    ev.preventDefault();
    main.focus();
  });
  window.addEventListener("hashchange", show);
  try {
    const cfg = await api.loadConfig();
    document.querySelector(".version").textContent = `Ferrite ${cfg.version} · ${cfg.region} · account ${cfg.accountId}`;
  } catch (e) {
    replace(main, h("h1", {}, "Ferrite console"), errorBox(e, "Reading /console/config.json"));
    return;
  }
  show();
}

start();
