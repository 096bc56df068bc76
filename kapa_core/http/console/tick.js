// TICKscript tokens for highlighting: the lexer's token classes (comments, strings,
// field references, regexes, durations, numbers, keywords, node and property names,
// operators). It only colours text; the daemon's check is what reports errors.

const KEYWORDS = new Set(["var", "lambda", "TRUE", "FALSE", "AND", "OR", "dbrp"]);
const TYPES = new Set(["stream", "batch"]);
const RULES = [
  ["comment", /\/\/[^\n]*/y],
  ["string", /'''[\s\S]*?(?:'''|$)/y],
  ["string", /'(?:[^'\\\n]|\\.)*'?/y],
  ["reference", /"(?:[^"\\\n]|\\.)*"?/y],
  ["duration", /\d+(?:\.\d+)?(?:ms|us|u|µ|s|m|h|d|w)\b/y],
  ["number", /\d+(?:\.\d+)?(?:[eE][-+]?\d+)?/y],
  ["word", /[A-Za-z_][\w]*/y],
  ["space", /\s+/y],
  ["operator", /=~|!~|==|!=|<=|>=|&&|\|\||[|@.+\-*/%<>=!(),\[\]{}:]/y],
  ["other", /[\s\S]/y],
];

export function tokenize(text) {
  const out = [];
  let pos = 0, prev = null, prevSignificant = null;
  while (pos < text.length) {
    let kind = "other", value = text[pos];
    for (const [name, re] of RULES) {
      re.lastIndex = pos;
      const m = re.exec(text);
      if (m && m[0].length) { kind = name; value = m[0]; break; }
    }
    if (kind === "operator" && value === "/" && prevSignificant &&
        (prevSignificant.value === "=~" || prevSignificant.value === "!~" || prevSignificant.value === "(" || prevSignificant.value === ",")) {
      const m = /\/(?:[^/\\\n]|\\.)*\/?/y; m.lastIndex = pos;
      const r = m.exec(text);
      if (r) { kind = "regex"; value = r[0]; }
    }
    if (kind === "word") {
      if (KEYWORDS.has(value)) kind = "keyword";
      else if (TYPES.has(value)) kind = "type";
      else if (prevSignificant && prevSignificant.value === "|") kind = "node";
      else if (prevSignificant && prevSignificant.value === "@") kind = "node";
      else if (prevSignificant && prevSignificant.value === ".") kind = "property";
      else kind = "identifier";
    }
    const token = { kind, value };
    out.push(token);
    if (kind !== "space" && kind !== "comment") prevSignificant = token;
    prev = token;
    pos += value.length;
  }
  return out;
}
