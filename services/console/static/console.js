// baove console: live parts. A page element with data-events (a
// server-sent events URL), data-fragment (a URL serving the part) and
// data-target (the part's id) gets the part reloaded after each event
// (several events in a burst reload once). Without JavaScript the page
// works the same; reloading it shows the same.
"use strict";
document.querySelectorAll("[data-events]").forEach((live) => {
  const target = live.dataset.target;
  let timer = null;
  const reload = async () => {
    timer = null;
    const response = await fetch(live.dataset.fragment, { credentials: "same-origin" });
    if (!response.ok) return;
    const html = await response.text();
    const part = new DOMParser().parseFromString(html, "text/html").getElementById(target);
    const current = document.getElementById(target);
    if (part && current) current.replaceWith(part);
  };
  const events = new EventSource(live.dataset.events);
  events.onmessage = () => {
    if (timer === null) timer = setTimeout(reload, 300);
  };
});
