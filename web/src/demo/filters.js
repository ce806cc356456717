// The demo's filters: what the filter form asks for, as the filter arguments the room subscribes
// with (the server then sends only what passes), and as the test that narrows what the room already
// holds (its history, earlier announcements) the same way.

// narrowing turns the form's values into filters: authors (comma-separated names: eq for one, in
// for several), contains (a substring of the text) and minPriority (priority ge). A blank value
// asks for nothing, and a filter that asks for nothing is undefined: no filter argument at all.
export function narrowing({ authors = '', contains = '', minPriority = '' } = {}) {
  const names = namesIn(authors);
  const author = names.length === 0 ? undefined : names.length === 1 ? { eq: names[0] } : { in: names };
  const text = contains === '' ? undefined : { contains };
  const priority = minPriority === '' ? undefined : { ge: Number(minPriority) };
  return {
    // messageAdded's MessageFilter.
    messages: author || text ? { author, text } : undefined,
    // messageEdited's and messageDeleted's: by author only. An author never changes, but an edit
    // that makes a shown message stop matching a text filter must still arrive (it then hides it).
    authors: author ? { author } : undefined,
    // announcement's AnnouncementFilter.
    announcements: priority ? { priority } : undefined,
  };
}

// matches tests a value against a filter as the server does, for the operators narrowing uses.
export function matches(filter, value) {
  if (!filter) return true;
  return Object.entries(filter).every(
    ([field, ops]) => !ops || Object.entries(ops).every(([op, arg]) => holds(op, value[field], arg)),
  );
}

function holds(op, v, arg) {
  switch (op) {
    case 'eq':
      return v === arg;
    case 'in':
      return arg.includes(v);
    case 'contains':
      return typeof v === 'string' && v.includes(arg);
    case 'ge':
      return typeof v === 'number' && v >= arg;
  }
  throw new Error(`matches: no operator ${op}`);
}

// describe says in words what a room receives with these filters.
export function describe({ authors = '', contains = '', minPriority = '' } = {}) {
  const names = namesIn(authors);
  const shown = names.length > 3 ? [...names.slice(0, 3), `${names.length - 3} others`] : names;
  const from = names.length ? ` from ${shown.join(', ').replace(/, ([^,]*)$/, ' or $1')}` : '';
  const containing = contains ? ` containing “${contains}”` : '';
  const messages = from || containing ? `messages${from}${containing}` : 'every message';
  const announcements = minPriority === '' ? 'every announcement' : `announcements with priority ≥ ${minPriority}`;
  return `Receiving ${messages} and ${announcements}.`;
}

// namesIn splits a comma-separated list of names.
const namesIn = (authors) =>
  authors
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
