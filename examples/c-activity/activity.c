// An Obelisk activity in C, written against the guest ABI v1 (docs/abi.md) directly:
// no SDK, only wasi-libc. It shows what any language needs to do to be a guest:
//
//   - be a WASI preview 1 reactor (clang -mexec-model=reactor exports _initialize);
//   - export obelisk_v1_alloc, which hands the host memory for the run's input, and
//     obelisk_v1_run, which reads the input JSON, runs one function and returns the
//     output JSON packed as (pointer << 32) | length;
//   - optionally import obelisk_v1.host_call / host_take (here: the key-value store) and
//     wasi:logging's log;
//   - carry its WIT in the obelisk-wit custom section (`obelisk component embed-wit`).
//
// The functions are those of wit/activity.wit. Build: `make` in this folder (clang,
// lld, wasi-libc and compiler-rt for wasm32).
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ---- The host's imports (docs/abi.md, "Host imports" and "Logging").

__attribute__((import_module("obelisk_v1"), import_name("host_call")))
int32_t host_call(const char *req, int32_t req_len, char *out, int32_t out_cap);

__attribute__((import_module("obelisk_v1"), import_name("host_take")))
int32_t host_take(char *out, int32_t out_cap);

__attribute__((import_module("wasi:logging/logging@0.1.0-draft"), import_name("log")))
void wasi_logging_log(int32_t level, const char *context, int32_t context_len,
                      const char *message, int32_t message_len);

enum { LOG_INFO = 2 };

// die explains a broken promise of the host on stderr, whose last line the host
// reports as the reason of the trap that follows.
static _Noreturn void die(const char *what) {
	fprintf(stderr, "c-activity: %s\n", what);
	abort();
}

// ---- Growable byte buffers.

typedef struct {
	char *p;
	size_t len, cap;
} buf;

static void buf_reserve(buf *b, size_t n) {
	if (b->len + n <= b->cap) {
		return;
	}
	size_t cap = b->cap ? b->cap : 256;
	while (cap < b->len + n) {
		cap *= 2;
	}
	char *p = realloc(b->p, cap);
	if (p == NULL) {
		die("out of memory");
	}
	b->p = p;
	b->cap = cap;
}

static void buf_put(buf *b, const char *s, size_t n) {
	buf_reserve(b, n);
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

static void buf_str(buf *b, const char *s) { buf_put(b, s, strlen(s)); }

static void buf_byte(buf *b, char c) { buf_put(b, &c, 1); }

static void buf_u64(buf *b, uint64_t v) {
	char digits[20];
	int n = 0;
	do {
		digits[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	while (n > 0) {
		buf_byte(b, digits[--n]);
	}
}

// buf_json_string appends s as a JSON string. UTF-8 passes as it is; quotes,
// backslashes and control characters are escaped.
static void buf_json_string(buf *b, const char *s, size_t n) {
	static const char hex[] = "0123456789abcdef";
	buf_byte(b, '"');
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\') {
			buf_byte(b, '\\');
			buf_byte(b, (char)c);
		} else if (c < 0x20) {
			char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
			buf_put(b, esc, sizeof esc);
		} else {
			buf_byte(b, (char)c);
		}
	}
	buf_byte(b, '"');
}

// buf_utf8 appends code point r as UTF-8.
static void buf_utf8(buf *b, uint32_t r) {
	if (r < 0x80) {
		buf_byte(b, (char)r);
	} else if (r < 0x800) {
		buf_byte(b, (char)(0xC0 | r >> 6));
		buf_byte(b, (char)(0x80 | (r & 0x3F)));
	} else if (r < 0x10000) {
		buf_byte(b, (char)(0xE0 | r >> 12));
		buf_byte(b, (char)(0x80 | (r >> 6 & 0x3F)));
		buf_byte(b, (char)(0x80 | (r & 0x3F)));
	} else {
		buf_byte(b, (char)(0xF0 | r >> 18));
		buf_byte(b, (char)(0x80 | (r >> 12 & 0x3F)));
		buf_byte(b, (char)(0x80 | (r >> 6 & 0x3F)));
		buf_byte(b, (char)(0x80 | (r & 0x3F)));
	}
}

// ---- A small JSON reader: enough for the run input and the host's responses.
// A cursor is the unread rest of a document.

typedef struct {
	const char *p, *end;
} cursor;

static void skip_ws(cursor *c) {
	while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')) {
		c->p++;
	}
}

// eat consumes ch (after white space) if it comes next.
static bool eat(cursor *c, char ch) {
	skip_ws(c);
	if (c->p < c->end && *c->p == ch) {
		c->p++;
		return true;
	}
	return false;
}

static bool hex4(cursor *c, uint32_t *v) {
	if (c->end - c->p < 4) {
		return false;
	}
	*v = 0;
	for (int i = 0; i < 4; i++) {
		char h = *c->p++;
		int d = h >= '0' && h <= '9'   ? h - '0'
		        : h >= 'a' && h <= 'f' ? h - 'a' + 10
		        : h >= 'A' && h <= 'F' ? h - 'A' + 10
		                               : -1;
		if (d < 0) {
			return false;
		}
		*v = *v << 4 | (uint32_t)d;
	}
	return true;
}

// read_string reads a JSON string, decoding its escapes into out (NULL: skip it).
// Go's encoder escapes <, > and & as \u003c..., so \u escapes are common;
// a lone surrogate becomes U+FFFD.
static bool read_string(cursor *c, buf *out) {
	if (!eat(c, '"')) {
		return false;
	}
	while (c->p < c->end) {
		char ch = *c->p++;
		if (ch == '"') {
			return true;
		}
		if (ch != '\\') {
			if (out) {
				buf_byte(out, ch);
			}
			continue;
		}
		if (c->p == c->end) {
			return false;
		}
		uint32_t r;
		switch (*c->p++) {
		case '"': r = '"'; break;
		case '\\': r = '\\'; break;
		case '/': r = '/'; break;
		case 'b': r = '\b'; break;
		case 'f': r = '\f'; break;
		case 'n': r = '\n'; break;
		case 'r': r = '\r'; break;
		case 't': r = '\t'; break;
		case 'u':
			if (!hex4(c, &r)) {
				return false;
			}
			if (r >= 0xD800 && r < 0xDC00) {
				// A high surrogate: a low one must follow to make one code point.
				cursor save = *c;
				uint32_t lo;
				if (c->end - c->p >= 2 && c->p[0] == '\\' && c->p[1] == 'u' &&
				    (c->p += 2, hex4(c, &lo)) && lo >= 0xDC00 && lo < 0xE000) {
					r = 0x10000 + ((r - 0xD800) << 10) + (lo - 0xDC00);
				} else {
					*c = save;
					r = 0xFFFD;
				}
			} else if (r >= 0xDC00 && r < 0xE000) {
				r = 0xFFFD;
			}
			break;
		default:
			return false;
		}
		if (out) {
			buf_utf8(out, r);
		}
	}
	return false;
}

// read_u64 reads an unsigned integer written as digits (docs/abi.md, "Values").
static bool read_u64(cursor *c, uint64_t *v) {
	skip_ws(c);
	const char *start = c->p;
	*v = 0;
	while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
		uint64_t d = (uint64_t)(*c->p - '0');
		if (*v > (UINT64_MAX - d) / 10) {
			return false;
		}
		*v = *v * 10 + d;
		c->p++;
	}
	return c->p > start;
}

static bool skip_value(cursor *c);

// skip_members consumes the rest of an object or array, up to its closing char.
static bool skip_members(cursor *c, bool object, char close) {
	if (eat(c, close)) {
		return true;
	}
	do {
		if (object && (!read_string(c, NULL) || !eat(c, ':'))) {
			return false;
		}
		if (!skip_value(c)) {
			return false;
		}
	} while (eat(c, ','));
	return eat(c, close);
}

// skip_value consumes one JSON value of any kind.
static bool skip_value(cursor *c) {
	skip_ws(c);
	if (c->p == c->end) {
		return false;
	}
	switch (*c->p) {
	case '"':
		return read_string(c, NULL);
	case '{':
		c->p++;
		return skip_members(c, true, '}');
	case '[':
		c->p++;
		return skip_members(c, false, ']');
	default: {
		// A number or a literal (true, false, null).
		const char *start = c->p;
		while (c->p < c->end && strchr("+-.0123456789eEtrufalsn", *c->p) != NULL) {
			c->p++;
		}
		return c->p > start;
	}
	}
}

// raw_value returns the JSON text of the value at c, as it is.
static bool raw_value(cursor c, cursor *raw) {
	skip_ws(&c);
	raw->p = c.p;
	if (!skip_value(&c)) {
		return false;
	}
	raw->end = c.p;
	return true;
}

// member finds the member key of the object at obj and points val at its value.
static bool member(cursor obj, const char *key, cursor *val) {
	if (!eat(&obj, '{') || eat(&obj, '}')) {
		return false;
	}
	buf name = {0};
	bool found = false;
	do {
		name.len = 0;
		if (!read_string(&obj, &name) || !eat(&obj, ':')) {
			break;
		}
		if (name.len == strlen(key) && memcmp(name.p, key, name.len) == 0) {
			skip_ws(&obj);
			*val = obj;
			found = true;
			break;
		}
		if (!skip_value(&obj)) {
			break;
		}
	} while (eat(&obj, ','));
	free(name.p);
	return found;
}

// items points items[0..max) at the first elements of the array at arr and
// returns how many it has (at most max), or -1 if it is not an array.
static int items(cursor arr, cursor *item, int max) {
	if (!eat(&arr, '[')) {
		return -1;
	}
	if (eat(&arr, ']')) {
		return 0;
	}
	int n = 0;
	do {
		skip_ws(&arr);
		if (n < max) {
			item[n++] = arr;
		}
		if (!skip_value(&arr)) {
			return -1;
		}
	} while (eat(&arr, ','));
	return eat(&arr, ']') ? n : -1;
}

// ---- Host calls.

// call_host performs one operation (docs/abi.md, host_call): the response is written
// into resp's buffer when it fits, otherwise the host keeps it and host_take copies it
// into a buffer of its size.
static void call_host(const buf *req, buf *resp) {
	resp->len = 0;
	buf_reserve(resp, 4096);
	int32_t n = host_call(req->p, (int32_t)req->len, resp->p, (int32_t)resp->cap);
	if (n < 0) {
		die("host_call returned a negative length");
	}
	if ((size_t)n > resp->cap) {
		buf_reserve(resp, (size_t)n);
		if (host_take(resp->p, n) != n) {
			die("host_take did not copy the kept response");
		}
	}
	resp->len = (size_t)n;
}

// ---- The run's output. It must outlive obelisk_v1_run: the host reads it after.

static buf output;

static void ok_raw(const char *json, size_t n) {
	buf_str(&output, "{\"ok\":");
	buf_put(&output, json, n);
	buf_byte(&output, '}');
}

// fail returns err(permanent-failure(message ++ detail)): the WIT variant case
// permanent-failure is "permanent_failure" in JSON, and its name makes the
// host finish the execution without retrying it.
static void fail(const char *message, const char *detail, size_t detail_len) {
	buf text = {0};
	buf_str(&text, message);
	buf_put(&text, detail, detail_len);
	buf_str(&output, "{\"err\":{\"permanent_failure\":");
	buf_json_string(&output, text.p, text.len);
	buf_str(&output, "}}");
	free(text.p);
}

// ---- The exported functions (wit/activity.wit).

static void fibo(cursor *params, int n) {
	uint64_t k;
	if (n != 1 || !read_u64(&params[0], &k)) {
		die("fibo: want one u8 parameter");
	}
	if (k > 93) {
		buf msg = {0};
		buf_str(&msg, "fibo(");
		buf_u64(&msg, k);
		buf_str(&msg, ") does not fit in a u64");
		fail("", msg.p, msg.len);
		free(msg.p);
		return;
	}
	uint64_t a = 0, b = 1;
	for (uint64_t i = 0; i < k; i++) {
		uint64_t next = a + b;
		a = b;
		b = next;
	}
	buf msg = {0};
	buf_str(&msg, "fibo(");
	buf_u64(&msg, k);
	buf_str(&msg, ") = ");
	buf_u64(&msg, a);
	wasi_logging_log(LOG_INFO, "", 0, msg.p, (int32_t)msg.len);
	free(msg.p);
	buf_str(&output, "{\"ok\":");
	buf_u64(&output, a);
	buf_byte(&output, '}');
}

static void reverse(cursor *params, int n) {
	buf s = {0};
	if (n != 1 || !read_string(&params[0], &s)) {
		die("reverse: want one string parameter");
	}
	// read_string made valid UTF-8: a code point starts at every byte that is not
	// a continuation byte (10xxxxxx).
	buf r = {0};
	size_t end = s.len;
	while (end > 0) {
		size_t start = end - 1;
		while (start > 0 && ((unsigned char)s.p[start] & 0xC0) == 0x80) {
			start--;
		}
		buf_put(&r, s.p + start, end - start);
		end = start;
	}
	buf_str(&output, "{\"ok\":");
	buf_json_string(&output, r.p, r.len);
	buf_byte(&output, '}');
	free(s.p);
	free(r.p);
}

// kv runs function fn of obelisk:kv/store with the JSON parameters params and points
// result at the function's result ({"ok": v} or {"err": e}). On a host error it
// returns false with result at the whole response.
static bool kv(const char *fn, const char *params, size_t params_len, buf *resp, cursor *result) {
	buf req = {0};
	buf_str(&req, "{\"op\":\"kv\",\"fn\":\"");
	buf_str(&req, fn);
	buf_str(&req, "\",\"params\":");
	buf_put(&req, params, params_len);
	buf_byte(&req, '}');
	call_host(&req, resp);
	free(req.p);
	cursor doc = {resp->p, resp->p + resp->len};
	if (member(doc, "ok", result) && raw_value(*result, result)) {
		return true;
	}
	*result = doc;
	return false;
}

static void swap(cursor *params, int n) {
	cursor key, value;
	// The parameters are valid JSON strings already: they are passed on as they are.
	if (n != 2 || !raw_value(params[0], &key) || !raw_value(params[1], &value)) {
		die("swap: want two string parameters");
	}
	buf args = {0}, resp = {0}, previous = {0};
	buf_str(&args, "[\"c-activity\",");
	buf_put(&args, key.p, (size_t)(key.end - key.p));
	buf_byte(&args, ']');
	cursor result, v;
	// get answers {"ok": null | "value"} or {"err": {"invalid": "..."}}.
	if (!kv("get", args.p, args.len, &resp, &result) || !member(result, "ok", &v) || !raw_value(v, &v)) {
		fail("kv get: ", result.p, (size_t)(result.end - result.p));
	} else {
		buf_put(&previous, v.p, (size_t)(v.end - v.p));
		// set's parameters: the same with the value appended.
		args.p[args.len - 1] = ',';
		buf_put(&args, value.p, (size_t)(value.end - value.p));
		buf_byte(&args, ']');
		if (!kv("set", args.p, args.len, &resp, &result) || !member(result, "ok", &v)) {
			fail("kv set: ", result.p, (size_t)(result.end - result.p));
		} else {
			ok_raw(previous.p, previous.len);
		}
	}
	free(args.p);
	free(resp.p);
	free(previous.p);
}

// ---- The guest exports (docs/abi.md, "Guest exports").

// obelisk_v1_alloc hands the host size bytes for the run's input. An instance runs
// once and is then dropped, so nothing is ever freed.
__attribute__((export_name("obelisk_v1_alloc")))
void *obelisk_v1_alloc(int32_t size) {
	void *p = malloc(size > 0 ? (size_t)size : 1);
	if (p == NULL) {
		die("out of memory");
	}
	return p;
}

static const struct {
	const char *ffqn;
	void (*fn)(cursor *params, int n);
} exports[] = {
    {"examples:c-activity/text.fibo", fibo},
    {"examples:c-activity/text.reverse", reverse},
    {"examples:c-activity/text.swap", swap},
};

// obelisk_v1_run runs the function named by the input
// {"ffqn": ..., "params": [...], "execution_id": ..., "attempt": N}
// and returns its result, {"ok": v} or {"err": e}, packed as (pointer << 32) | length.
// The host has type-checked the parameters against the WIT.
__attribute__((export_name("obelisk_v1_run")))
int64_t obelisk_v1_run(const char *in, int32_t in_len) {
	cursor doc = {in, in + in_len}, at;
	buf ffqn = {0};
	if (!member(doc, "ffqn", &at) || !read_string(&at, &ffqn)) {
		die("the run input has no ffqn");
	}
	cursor params[2];
	int n = 0; // an input without params means []
	if (member(doc, "params", &at) && (n = items(at, params, 2)) < 0) {
		die("the run input's params are not an array");
	}
	output.len = 0;
	for (size_t i = 0; i < sizeof exports / sizeof exports[0]; i++) {
		if (strlen(exports[i].ffqn) == ffqn.len && memcmp(exports[i].ffqn, ffqn.p, ffqn.len) == 0) {
			exports[i].fn(params, n);
			free(ffqn.p);
			return (int64_t)((uint64_t)(uintptr_t)output.p << 32 | (uint32_t)output.len);
		}
	}
	die("obelisk_v1_run: not a function of this component");
}
