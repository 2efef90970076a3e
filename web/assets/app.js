// Progressive enhancement only: every page works without this script.
"use strict";

// Search as you type: titles from the catalog's suggestions fill the search box's datalist.
document.querySelectorAll("input[data-suggest]").forEach((input) => {
  const list = document.getElementById(input.getAttribute("list"));
  let timer = null;
  let controller = null;
  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      const q = input.value.trim();
      if (q.length < 2 || !list) return;
      if (controller) controller.abort();
      controller = new AbortController();
      try {
        const url = input.dataset.suggest + "?q=" + encodeURIComponent(q);
        const response = await fetch(url, { signal: controller.signal });
        if (!response.ok) return;
        const body = await response.json();
        list.replaceChildren(...body.suggestions.map((title) => {
          const option = document.createElement("option");
          option.value = title;
          return option;
        }));
      } catch (_) { /* a newer keystroke aborted it, or the network failed: keep the list */ }
    }, 150);
  });
});

// Live stock on a product page: the chosen variant's availability, pushed as it changes.
document.querySelectorAll("form[data-stock]").forEach((form) => {
  const select = form.querySelector("select[name=sku]");
  const label = form.querySelector(".stock");
  if (!select || !label || !window.EventSource) return;
  const available = new Map();
  [...select.options].forEach((o) => available.set(o.value, Number(o.dataset.available)));
  const show = () => {
    const units = available.get(select.value) ?? 0;
    label.textContent = units > 0 ? (units <= 5 ? `Only ${units} left` : "In stock") : "Out of stock";
  };
  select.addEventListener("change", show);
  show();
  const skus = [...available.keys()].join(",");
  const source = new EventSource("/api/v1/stock/stream?skus=" + encodeURIComponent(skus));
  source.addEventListener("stock", (event) => {
    try {
      const tick = JSON.parse(event.data);
      available.set(tick.sku, tick.available);
      show();
    } catch (_) { /* a malformed event changes nothing */ }
  });
});
