// TICKscript tokens for highlighting, read as Kapacitor's lexer reads them: after an
// operand (a name, a number, a string, a reference, ")") a "/" divides; elsewhere it
// starts a regex, and so it does after "=", "=~" and "!~"; "//" starts a comment (one
// token per line here); a number with one unit letter is a duration ("5m", "10ms", but
// "1.5s" is a number and a name). It only colours text: the daemon's check is what
// reports errors, so text the lexer would stop at is coloured as well as it can be.

const KEYWORDS = new Set(["var", "TRUE", "FALSE", "AND", "OR", "dbrp"]);
const TYPES = new Set(["stream", "batch"]);
const UNITS = "uµsmhdw";
const AFTER_OPERAND = /(!~|=~)|(==|!=|<=|>=|[-+*%<>!]|\/(?!\/))|(=)/y;
const NUMBER = /\d*(\.\d*)?/y;
const WORD = /[\p{L}][\p{L}\p{Nd}_]*/uy;
const SPACE = /\s+/y;

function match(re, text, pos) {
  re.lastIndex = pos;
  return re.exec(text);
}

// The end of a quoted token whose opening quote is at pos: a backslash takes the
// quote after it; -1 when it is not closed.
function quotedEnd(text, pos, quote) {
  for (let i = pos + 1; i < text.length; i++) {
    if (text[i] === "\\" && text[i + 1] === quote) i++;
    else if (text[i] === quote) return i + 1;
  }
  return -1;
}

function stringEnd(text, pos) {
  if (text.startsWith("'''", pos)) {
    const close = text.indexOf("'''", pos + 3);
    return close < 0 ? -1 : close + 3;
  }
  return quotedEnd(text, pos, "'");
}

export function tokenize(text) {
  const out = [];
  const n = text.length;
  let pos = 0, after = false, regexNext = false, previous = null;
  const take = (kind, end) => {
    const token = { kind, value: text.slice(pos, end) };
    out.push(token);
    pos = end;
    return token;
  };
  while (pos < n) {
    const c = text[pos];
    const space = match(SPACE, text, pos);
    if (space) { take("space", pos + space[0].length); continue; }
    if (c === "/" && (regexNext || (!after && text[pos + 1] !== "/"))) {
      regexNext = after = false;
      const end = quotedEnd(text, pos, "/");
      previous = take(end < 0 ? "other" : "regex", end < 0 ? n : end);
      continue;
    }
    regexNext = false;
    if (after) {
      after = false;
      const op = match(AFTER_OPERAND, text, pos);
      if (op) {
        regexNext = !op[2];
        previous = take("operator", pos + op[0].length);
        continue;
      }
    }
    if (c === "/") {  // "//": a comment, to the end of its line
      const nl = text.indexOf("\n", pos);
      take("comment", nl < 0 ? n : nl);
      continue;
    }
    if ("()[],|@*".includes(c)) {
      previous = take("operator", pos + 1);
      after = c === ")";
      continue;
    }
    const word = match(WORD, text, pos);
    if (word) {
      const value = word[0];
      const before = previous ? previous.value : "";
      let kind = "identifier";
      if (value === "lambda" || KEYWORDS.has(value)) kind = "keyword";
      else if (TYPES.has(value)) kind = "type";
      else if (before === "|" || before === "@") kind = "node";
      else if (before === ".") kind = "property";
      previous = take(kind, pos + value.length);
      if (value === "lambda" && text[pos] === ":") previous = take("operator", pos + 1);
      after = true;
      continue;
    }
    if (c === "-" || c === "!") { previous = take("operator", pos + 1); continue; }
    if (c === "." || /\d/.test(c)) {
      if (c === "." && !/\d/.test(text[pos + 1] || "")) { previous = take("operator", pos + 1); continue; }
      const number = match(NUMBER, text, pos);
      let end = pos + number[0].length;
      let kind = "number";
      if (number[1] === undefined && end < n && UNITS.includes(text[end])) {
        end += text[end] === "m" && text[end + 1] === "s" ? 2 : 1;
        kind = "duration";
      }
      previous = take(kind, end);
      after = true;
      continue;
    }
    if (c === '"' || c === "'") {
      const end = c === '"' ? quotedEnd(text, pos, '"') : stringEnd(text, pos);
      // not closed yet (being typed): the rest is coloured as the string it would be
      previous = take(c === '"' ? "reference" : "string", end < 0 ? n : end);
      after = true;
      continue;
    }
    previous = take("other", pos + (text.codePointAt(pos) > 0xffff ? 2 : 1));
  }
  return out;
}
