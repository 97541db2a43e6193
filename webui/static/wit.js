// WIT function signatures ("func(n: u8, iterations: u32) -> result<u64>") turned into
// form fields, and form values turned into the JSON parameters of the API (see
// wasmhost/wit/value.go for the JSON mapping of WIT values).

const INT_RANGES = {
  u8: [0n, 255n], s8: [-128n, 127n], u16: [0n, 65535n], s16: [-32768n, 32767n],
  u32: [0n, 4294967295n], s32: [-2147483648n, 2147483647n],
  u64: [0n, 18446744073709551615n], s64: [-9223372036854775808n, 9223372036854775807n],
};

function tokenize(src) {
  const tokens = [];
  const re = /\s*(->|[(),:<>]|%?[A-Za-z_][A-Za-z0-9_-]*|\d+)/y;
  let m;
  while (re.lastIndex < src.length && (m = re.exec(src))) tokens.push(m[1]);
  if (re.lastIndex < src.trimEnd().length) throw new Error(`cannot parse signature at: ${src.slice(re.lastIndex)}`);
  return tokens;
}

// parseSignature returns {params: [{name, type}], result} where a type is {name, args}.
export function parseSignature(sig) {
  const t = tokenize(sig);
  let i = 0;
  const peek = () => t[i];
  const next = (want) => {
    const tok = t[i++];
    if (want !== undefined && tok !== want) throw new Error(`signature ${sig}: expected ${want}, got ${tok ?? 'end'}`);
    return tok;
  };
  const type = () => {
    const name = next();
    if (name === undefined) throw new Error(`signature ${sig}: missing type`);
    const node = { name: name.replace(/^%/, ''), args: [] };
    if (peek() === '<') {
      next('<');
      for (;;) {
        node.args.push(/^\d+$/.test(peek()) ? { name: next(), args: [], size: true } : type());
        if (peek() === ',') { next(','); continue; }
        next('>');
        break;
      }
    }
    return node;
  };
  if (peek() === 'async') next();
  next('func');
  next('(');
  const params = [];
  while (peek() !== ')') {
    const name = next().replace(/^%/, '');
    next(':');
    params.push({ name, type: type() });
    if (peek() === ',') next(',');
  }
  next(')');
  let result = null;
  if (peek() === '->') { next('->'); result = type(); }
  return { params, result };
}

export function typeString(ty) {
  return ty.args.length ? `${ty.name}<${ty.args.map(typeString).join(', ')}>` : ty.name;
}

function example(ty, depth = 0) {
  if (depth > 4) return null;
  const a = ty.args;
  if (ty.name in INT_RANGES) return 0;
  switch (ty.name) {
    case 'bool': return false;
    case 'f32': case 'f64': return 0.5;
    case 'string': return 'text';
    case 'char': return 'a';
    case 'list': return Array.from({ length: a[1]?.size ? Math.min(Number(a[1].name), 4) : 1 }, () => example(a[0], depth + 1));
    case 'tuple': return a.map((x) => example(x, depth + 1));
    case 'option': return example(a[0], depth + 1);
    case 'result': return { ok: a.length && a[0].name !== '_' ? example(a[0], depth + 1) : null };
  }
  return undefined; // a named type: unknown from the signature alone
}

// A field describes one form input: {name, wit, kind, min, max, optional, hint}; kind is
// int | float | bool | string | char | json.
function fieldOf(name, ty) {
  const wit = typeString(ty);
  const f = { name, wit, kind: 'json', optional: false, hint: '' };
  let inner = ty;
  if (ty.name === 'option' && ty.args.length === 1) {
    inner = ty.args[0];
    f.optional = true;
  }
  if (inner.name in INT_RANGES) {
    const [lo, hi] = INT_RANGES[inner.name];
    Object.assign(f, { kind: 'int', min: lo.toString(), max: hi.toString(), hint: `integer ${lo}…${hi}` });
  } else if (inner.name === 'f32' || inner.name === 'f64') {
    Object.assign(f, { kind: 'float', hint: 'number' });
  } else if (inner.name === 'bool') {
    Object.assign(f, { kind: f.optional ? 'json' : 'bool', hint: f.optional ? 'true, false or null' : '' });
  } else if (inner.name === 'string') {
    Object.assign(f, { kind: 'string', hint: 'text' });
  } else if (inner.name === 'char') {
    Object.assign(f, { kind: 'char', hint: 'one character' });
  } else {
    f.optional = false;
    const ex = example(ty);
    f.hint = ex === undefined ? `JSON value of type ${wit}` : `JSON, e.g. ${JSON.stringify(ex)}`;
  }
  if (f.optional && f.kind !== 'json') f.hint += '; empty for none';
  return f;
}

// fieldsFromSignature returns the form fields of a function's parameters.
export function fieldsFromSignature(sig) {
  return parseSignature(sig).params.map((p) => fieldOf(p.name, p.type));
}

// fieldsFromSchema returns the form fields of a function from the JSON Schema of its
// parameters (an array schema with prefixItems) and their WIT names and types
// (params: [{name, type}], as ComponentService.GetComponent gives them).
export function fieldsFromSchema(schema, params = []) {
  const items = schema.prefixItems || [];
  if (items.length !== params.length && params.length) throw new Error('schema and parameters differ');
  return items.map((item, i) => {
    const name = params[i]?.name || item.title || `param${i}`;
    const wit = params[i]?.type || item.title || '';
    let ty = null;
    try { ty = parseSignature(`func(x: ${wit})`).params[0].type; } catch { /* a type name */ }
    let s = item;
    let optional = false;
    const alts = s.anyOf || [];
    if (alts.length === 2 && alts.some((a) => a.type === 'null')) {
      optional = true;
      s = alts.find((a) => a.type !== 'null');
    }
    const f = { name, wit, kind: 'json', optional, hint: '' };
    const inner = ty && ty.name === 'option' ? ty.args[0] : ty;
    if (s.type === 'integer') {
      f.kind = 'int';
      if (inner && inner.name in INT_RANGES) {
        [f.min, f.max] = INT_RANGES[inner.name].map(String); // exact, unlike JSON numbers in JS
      } else {
        if (Number.isSafeInteger(s.minimum)) f.min = String(s.minimum);
        if (Number.isSafeInteger(s.maximum)) f.max = String(s.maximum);
      }
      f.hint = f.min !== undefined && f.max !== undefined ? `integer ${f.min}…${f.max}` : 'integer';
    } else if (s.type === 'number') {
      Object.assign(f, { kind: 'float', hint: 'number' });
    } else if (s.type === 'boolean' && !optional) {
      f.kind = 'bool';
    } else if (s.type === 'string') {
      Object.assign(f, s.maxLength === 1 ? { kind: 'char', hint: 'one character' } : { kind: 'string', hint: 'text' });
    } else if (Array.isArray(s.enum) && s.enum.every((x) => typeof x === 'string')) {
      Object.assign(f, { kind: 'enum', options: s.enum, hint: optional ? 'one of the cases, or none' : 'one of the cases' });
    } else if (s.type === 'array' && s.uniqueItems && Array.isArray(s.items?.enum)) {
      Object.assign(f, { kind: 'flags', options: s.items.enum, optional: false, hint: 'any of the flags (ctrl-click for several)' });
    } else {
      f.optional = false;
      f.hint = `JSON, e.g. ${JSON.stringify(schemaExample(item))}`;
    }
    if (f.optional && f.kind !== 'json' && f.kind !== 'enum') f.hint += '; empty for none';
    return f;
  });
}

// schemaExample returns a value valid for a JSON Schema of a WIT type.
export function schemaExample(s, depth = 0) {
  if (!s || typeof s !== 'object' || depth > 6) return null;
  if ('const' in s) return s.const;
  if (Array.isArray(s.enum)) return s.enum[0];
  if (Array.isArray(s.anyOf)) {
    const alt = s.anyOf.find((a) => a.type !== 'null') || s.anyOf[0];
    return schemaExample(alt, depth + 1);
  }
  switch (s.type) {
    case 'integer': return typeof s.minimum === 'number' && s.minimum > 0 ? s.minimum : 0;
    case 'number': return 0.5;
    case 'boolean': return false;
    case 'string': return s.maxLength === 1 ? 'a' : 'text';
    case 'null': return null;
    case 'array':
      if (Array.isArray(s.prefixItems)) return s.prefixItems.map((x) => schemaExample(x, depth + 1));
      return Array.from({ length: Math.min(s.minItems || 1, 4) }, () => schemaExample(s.items, depth + 1));
    case 'object': {
      const o = {};
      for (const k of s.required || Object.keys(s.properties || {})) o[k] = schemaExample(s.properties?.[k], depth + 1);
      return o;
    }
  }
  return null;
}

// encodeField turns the text (or checked state) of a field's input into JSON text; it
// throws an Error with a message for the user.
export function encodeField(f, input) {
  if (f.kind === 'bool') return input.checked ? 'true' : 'false';
  if (f.kind === 'flags') return JSON.stringify([...input.selectedOptions].map((o) => o.value));
  const v = input.value;
  if (f.optional && v.trim() === '') return 'null';
  switch (f.kind) {
    case 'int': {
      const s = v.trim();
      if (!/^[-+]?\d+$/.test(s)) throw new Error(`${f.name}: an integer is required`);
      const n = BigInt(s);
      if ((f.min !== undefined && n < BigInt(f.min)) || (f.max !== undefined && n > BigInt(f.max))) {
        throw new Error(`${f.name}: ${s} is out of range ${f.min}…${f.max}`);
      }
      return n.toString();
    }
    case 'float': {
      const n = Number(v.trim());
      if (v.trim() === '' || !Number.isFinite(n)) throw new Error(`${f.name}: a number is required`);
      return JSON.stringify(n);
    }
    case 'string': return JSON.stringify(v);
    case 'enum':
      return JSON.stringify(v);
    case 'char':
      if ([...v].length !== 1) throw new Error(`${f.name}: exactly one character is required`);
      return JSON.stringify(v);
    default: {
      const s = v.trim();
      if (s === '') throw new Error(`${f.name}: a JSON value is required`);
      try { JSON.parse(s); } catch (e) { throw new Error(`${f.name}: invalid JSON: ${e.message}`); }
      return s; // as typed: JSON.parse would round 64-bit integers
    }
  }
}
