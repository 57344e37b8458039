// baove console: live parts. An element with data-fragment (a URL serving
// the page or part again) and data-target (the ids of the parts, separated
// by spaces) gets those parts reloaded after each server-sent event of
// data-events (a burst reloads once), and every data-every seconds (the
// time left on deadlines). What a person is typing survives a reload: the
// text fields of each form (matched by its action) are carried into the
// fresh part, with the focus and the caret; the hidden fields (the
// version, the request id) come fresh. Without JavaScript the page works
// the same; reloading it shows the same.
"use strict";
const typed = "input:not([type=hidden]):not([type=submit]), textarea, select";
// Moves what was typed in `from` into `to` (same forms, by action and
// field name); returns the field to focus in `to`, and its selection.
const carry = (from, to) => {
  let focus = null;
  for (const form of from.querySelectorAll("form[action]")) {
    const twin = to.querySelector(`form[action="${CSS.escape(form.getAttribute("action"))}"]`);
    if (!twin) continue;
    for (const field of form.querySelectorAll(typed)) {
      if (!field.name) continue;
      const other = twin.querySelector(`[name="${CSS.escape(field.name)}"]`);
      if (!other) continue;
      if (field.type === "checkbox" || field.type === "radio") {
        if (field.value === other.value) other.checked = field.checked;
      } else {
        other.value = field.value;
      }
      if (field === document.activeElement) {
        focus = { field: other, start: field.selectionStart, end: field.selectionEnd };
      }
    }
  }
  return focus;
};
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
      if (!part || !current) continue;
      const focus = carry(current, part);
      current.replaceWith(part);
      if (focus) {
        focus.field.focus();
        try {
          focus.field.setSelectionRange(focus.start, focus.end);
        } catch (_) {
          // Not a text field: nothing to place.
        }
      }
    }
  };
  const soon = () => {
    if (timer === null) timer = setTimeout(reload, 300);
  };
  if (live.dataset.events) new EventSource(live.dataset.events).onmessage = soon;
  const every = Number(live.dataset.every || 0);
  if (every > 0) setInterval(soon, every * 1000);
});
