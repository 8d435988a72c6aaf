'use strict';
// Renders the entitlements JSON of the signed-in user. Every figure shown is a <data> element
// whose `value` is the JSON number, and every item mirrors its JSON fields in `data-*`
// attributes (`null` as "null", a field the JSON leaves out as no attribute), so that a test
// can compare the page with the JSON exactly.
(() => {
  const root = document.getElementById('usage');
  const message = document.getElementById('usage-message');
  const lang = document.documentElement.lang || undefined;
  const numbers = new Intl.NumberFormat(lang);
  const dates = new Intl.DateTimeFormat(lang, { dateStyle: 'medium', timeStyle: 'short' });
  const relative = new Intl.RelativeTimeFormat(lang, { numeric: 'auto' });

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value !== undefined) node.setAttribute(name, value);
    }
    add(node, ...children);
    return node;
  }
  // Appends the children that are there (a missing one is null or undefined).
  function add(node, ...children) {
    for (const child of children) {
      if (child !== undefined && child !== null && child !== false) node.append(child);
    }
  }
  const mirror = (value) => (value === undefined ? undefined : value === null ? 'null' : String(value));
  const figure = (n, name) => el('data', { class: name, value: String(n) }, numbers.format(n));
  const icon = (glyph) => el('span', { 'aria-hidden': 'true' }, glyph + ' ');

  function fromNow(ms) {
    const diff = ms - Date.now();
    const abs = Math.abs(diff);
    const steps = [
      ['year', 365 * 864e5, 365 * 864e5],
      ['month', 60 * 864e5, 30 * 864e5],
      ['day', 2 * 864e5, 864e5],
      ['hour', 2 * 36e5, 36e5],
      ['minute', 0, 6e4],
    ];
    for (const [unit, from, size] of steps) {
      if (abs >= from) return relative.format(Math.round(diff / size), unit);
    }
    return '';
  }
  // "in 12 days (Dec 1, 2026, 1:00 AM)", in a <time> that carries the instant.
  function when(ms, name) {
    const date = new Date(ms);
    return el('time', { class: name, datetime: date.toISOString(), 'data-ms': String(ms) },
      `${fromNow(ms)} (${dates.format(date)})`);
  }
  const title = (name) => name.charAt(0).toUpperCase() + name.slice(1).replace(/[_-]+/g, ' ');

  // A bar of `used` against `max`, with what went past it in the overage colour. The text
  // beside it says the same, so the bar is hidden from assistive technology.
  function bar(used, max, over) {
    const scale = Math.max(max + over, used, 1);
    const fill = el('span', { class: 'fill' });
    fill.style.width = `${(100 * Math.min(used, max)) / scale}%`;
    const parts = [fill];
    if (over > 0) {
      const past = el('span', { class: 'fill-over' });
      past.style.width = `${(100 * over) / scale}%`;
      parts.push(past);
    }
    return el('div', { class: 'bar', 'aria-hidden': 'true' }, ...parts);
  }

  function status(used, max, over) {
    if (max === null) return 'unlimited';
    if (over > 0) return 'over';
    if (max === 0) return 'blocked';
    if (used >= max) return 'full';
    // From 80 % used on, the page warns (in integers: no rounding at the edge).
    return 5 * used >= 4 * max ? 'near' : 'ok';
  }

  // A soft limit's overage: how far past the maximum the plan lets usage go.
  function overageText(overage) {
    if (overage === undefined) return null;
    if (overage === null) return el('p', { class: 'detail overage' }, 'Soft limit: usage may go past the maximum without end');
    return el('p', { class: 'detail overage' }, 'Soft limit: usage may go up to ', figure(overage, 'overage-max'),
      ' past the maximum');
  }

  // The heading, figures, bar and details shared by a limit and a pool. `over` is what was
  // used past the maximum.
  function gauge(item, label, entry, over, state) {
    const { max, used, remaining, per, resets, overage } = entry;
    const period = per ? ` per ${per}` : '';
    if (max === null || state === 'blocked') {
      const what = max === null ? el('span', { class: 'unlimited' }, 'Unlimited')
        : el('span', { class: 'blocked' }, 'Not included in your plan');
      add(item,
        el('div', { class: 'row' }, el('h3', {}, label), el('p', { class: 'figures' }, what)),
        el('p', { class: 'detail' }, figure(used, 'used'), ' used', period));
      return;
    }
    add(item,
      el('div', { class: 'row' }, el('h3', {}, label),
        el('p', { class: 'figures' }, figure(used, 'used'), ' of ', figure(max, 'max'), period)),
      bar(used, max, over),
      el('p', { class: 'detail' }, figure(remaining, 'remaining'), ' left',
        resets === null ? null : ' · resets ', resets === null ? null : when(resets, 'resets')),
      overageText(overage));
  }

  const note = (glyph, ...text) => el('p', { class: 'note' }, icon(glyph), ...text);

  function limitItem(limit) {
    const { resource, action, max, used } = limit;
    const over = max !== null && used > max ? used - max : 0;
    const state = status(used, max, over);
    const item = el('li', {
      class: 'item',
      'data-kind': 'limit',
      'data-resource': resource,
      'data-action': action,
      'data-max': mirror(max),
      'data-used': mirror(used),
      'data-remaining': mirror(limit.remaining),
      'data-per': mirror(limit.per),
      'data-resets': mirror(limit.resets),
      'data-overage': mirror(limit.overage),
      'data-status': state,
    });
    gauge(item, action === 'create' ? title(resource) : `${title(resource)}: ${action}`, limit, over, state);
    if (state === 'over') {
      add(item, note('▲', 'Over the limit by ', figure(over, 'over')));
    } else if (state === 'full') {
      add(item, note('■', limit.overage === undefined ? 'Limit reached' : 'Limit reached: more counts as overage'));
    } else if (state === 'near') {
      add(item, note('⚠', 'Almost used up'));
    }
    return item;
  }

  function grantItem(grant) {
    const { id, remaining, expires } = grant;
    return el('li', {
      class: 'grant',
      'data-kind': 'grant',
      'data-grant': id,
      'data-remaining': mirror(remaining),
      'data-expires': mirror(expires),
    }, `Top-up ${id}: `, figure(remaining, 'remaining'), ' left · ',
    expires === null ? 'never expires' : 'expires ', expires === null ? null : when(expires, 'expires'));
  }

  function poolItem(pool) {
    const { max, used, grants } = pool;
    const over = pool.overage_used || 0;
    const left = grants.reduce((sum, grant) => sum + grant.remaining, 0);
    const state = status(used, max, over);
    const item = el('li', {
      class: 'item',
      'data-kind': 'pool',
      'data-pool': pool.pool,
      'data-max': mirror(max),
      'data-used': mirror(used),
      'data-remaining': mirror(pool.remaining),
      'data-per': mirror(pool.per),
      'data-resets': mirror(pool.resets),
      'data-overage': mirror(pool.overage),
      'data-overage-used': mirror(pool.overage_used),
      'data-status': state,
    });
    const label = `${title(pool.pool)} credits`;
    gauge(item, label, pool, over, state);
    if (over > 0) {
      add(item, note('▲', 'Overage used: ', figure(over, 'over')));
    } else if (state === 'full') {
      add(item, note('■', left > 0 ? 'Allowance used up: top-ups are being spent' : 'No credits left'));
    } else if (state === 'blocked') {
      add(item, note('■', left > 0 ? 'Top-ups only' : 'No credits'));
    } else if (state === 'near') {
      add(item, note('⚠', 'Almost used up'));
    }
    if (grants.length > 0) {
      add(item, el('ul', { class: 'grants', 'aria-label': `${label}: top-ups` }, ...grants.map(grantItem)));
    }
    return item;
  }

  const STANDING = {
    active: 'Active',
    trial: 'Free trial',
    fallback: 'Trial ended',
    default: 'Default plan',
    none: 'No plan',
    expired: 'Expired',
  };

  function planSection(data) {
    const section = document.getElementById('usage-plan');
    const { plan, state, expires } = data;
    const name = plan === null ? 'No plan' : plan;
    section.append(
      el('p', { 'data-kind': 'plan', 'data-user': data.user, 'data-plan': mirror(plan),
        'data-state': state, 'data-expires': mirror(expires) },
      el('span', { class: 'plan-name' }, name), ' ', el('span', { class: 'badge' }, STANDING[state] || state)),
      el('p', { class: 'muted' }, `Signed in as ${data.user}`));
    let line = null;
    if (state === 'expired' && expires !== null) {
      line = el('p', { role: 'alert' }, icon('■'), `Your ${plan} plan expired `, when(expires, 'expires'),
        '. Renew it to go on using what it includes.');
    } else if (state === 'trial' && expires !== null) {
      line = el('p', {}, 'Your trial ends ', when(expires, 'expires'), '.');
    } else if (state === 'fallback') {
      line = el('p', {}, `Your trial ended: you are on the ${plan} plan.`);
    } else if (state === 'default') {
      line = el('p', {}, `You have no plan of your own: the ${plan} plan applies.`);
    } else if (state === 'none') {
      line = el('p', { role: 'alert' }, 'You have no plan: choose one to use what it includes.');
    } else if (expires !== null) {
      line = el('p', {}, 'Your plan runs until ', when(expires, 'expires'), '.');
    }
    if (line) section.append(line);
    section.hidden = false;
  }

  function list(id, items, render) {
    const section = document.getElementById(id);
    if (items.length === 0) return;
    section.append(el('ul', {}, ...items.map(render)));
    section.hidden = false;
  }

  function finish(state, text) {
    message.textContent = text;
    message.hidden = text === '';
    if (state !== 'ready') {
      message.setAttribute('role', 'alert');
      for (const id of ['usage-plan', 'usage-limits', 'usage-credits']) {
        document.getElementById(id).hidden = true;
      }
    }
    root.setAttribute('data-status', state);
    root.setAttribute('aria-busy', 'false');
  }

  function render(data) {
    if (!data || typeof data !== 'object' || !Array.isArray(data.limits) || !Array.isArray(data.credits)) {
      throw new Error('not the entitlements JSON');
    }
    planSection(data);
    list('usage-limits', data.limits, limitItem);
    list('usage-credits', data.credits, poolItem);
    const empty = data.limits.length === 0 && data.credits.length === 0;
    const planless = data.state === 'expired' || data.state === 'none';
    finish('ready', empty && !planless ? 'Your plan sets no limits.' : '');
  }

  // The entitlements URL, relative to this page, with this page's query parameters added (a
  // demo may name its user there; a real application relies on its session cookie).
  function source() {
    const url = new URL(root.getAttribute('data-entitlements') || 'entitlements', document.baseURI);
    for (const [name, value] of new URLSearchParams(window.location.search)) {
      if (!url.searchParams.has(name)) url.searchParams.append(name, value);
    }
    return url;
  }

  message.textContent = 'Loading your usage…';
  fetch(source(), { credentials: 'same-origin', headers: { accept: 'application/json' } })
    .then((response) => {
      if (response.status === 401) {
        finish('unauthenticated', 'Sign in to see your plan and usage.');
        return;
      }
      if (!response.ok) {
        finish('error', `Your usage cannot be shown right now (HTTP ${response.status}). Try again in a moment.`);
        return;
      }
      return response.json().then(render);
    })
    .catch(() => finish('error', 'Your usage cannot be shown right now. Try again in a moment.'));
})();
