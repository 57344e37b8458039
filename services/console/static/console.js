// baove console: live parts. An element with data-fragment (a URL serving
// the page or part again) and data-target (the ids of the parts, separated
// by spaces) gets those parts reloaded after each server-sent event of
// data-events (a burst reloads once), and every data-every seconds (the
// time left on deadlines). Forms are never replaced: what an officer is
// typing stays. Without JavaScript the page works the same; reloading it
// shows the same.
"use strict";
document.querySelectorAll("[data-fragment]").forEach((live) => {
  const targets = live.dataset.target.split(/\s+/).filter((t) => t !== "");
  let timer = null;
  const reload = async () => {
    timer = null;
    const response = await fetch(live.dataset.fragment, { credentials: "same-origin" });
    if (!response.ok) return;
    const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
    for (const id of targets) {
      const part = fresh.getElementById(id);
      const current = document.getElementById(id);
      if (part && current) current.replaceWith(part);
    }
  };
  const soon = () => {
    if (timer === null) timer = setTimeout(reload, 300);
  };
  if (live.dataset.events) new EventSource(live.dataset.events).onmessage = soon;
  const every = Number(live.dataset.every || 0);
  if (every > 0) setInterval(soon, every * 1000);
});
