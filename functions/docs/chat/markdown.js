// A small Markdown renderer for replies: paragraphs, headings, lists (nested,
// ordered), fenced code, block quotes, tables, rules, and inline code,
// emphasis, strike-through and links. Safe by construction: it builds DOM
// nodes and sets text only as text nodes, never parses HTML, so markup in a
// message shows as the characters it is. Links open only http(s) and mailto.

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([\w+#.-]*)/;
const HEADING = /^ {0,3}(#{1,6})\s+(.*?)(\s+#+)?\s*$/;
const RULE = /^ {0,3}([-*_])(\s*\1){2,}\s*$/;
const QUOTE = /^ {0,3}>\s?/;
const ITEM = /^( *)([-*+]|\d{1,9}[.)])\s+(.*)$/;
const TABLE_RULE = /^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$/;
const SAFE_LINK = /^(https?:\/\/|mailto:)/i;
const ESCAPABLE = /[!-/:-@[-`{-~]/;

/** Renders `text` as a DocumentFragment. */
export function renderMarkdown(text) {
  const root = document.createDocumentFragment();
  blocks(String(text).replace(/\r\n?/g, "\n").split("\n"), root);
  return root;
}

function el(tag, parent, className) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  parent.append(node);
  return node;
}

const isTable = (lines, i) => lines[i].includes("|") && i + 1 < lines.length && lines[i + 1].includes("-") && TABLE_RULE.test(lines[i + 1]);
const startsBlock = (lines, i) =>
  FENCE.test(lines[i]) || HEADING.test(lines[i]) || RULE.test(lines[i]) || QUOTE.test(lines[i]) || ITEM.test(lines[i]) || isTable(lines, i);

function blocks(lines, parent) {
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    let m;
    if (!line.trim()) {
      i++;
    } else if ((m = FENCE.exec(line))) {
      const close = new RegExp(`^ {0,3}${m[1][0] === "`" ? "`" : "~"}{${m[1].length},}\\s*$`);
      const body = [];
      for (i++; i < lines.length && !close.test(lines[i]); i++) body.push(lines[i]);
      i++; // the closing fence (a reply still streaming may have none yet)
      const code = el("code", el("pre", parent));
      if (m[2]) code.className = `language-${m[2]}`;
      code.textContent = body.join("\n");
    } else if ((m = HEADING.exec(line))) {
      inline(m[2], el(`h${Math.min(m[1].length + 2, 6)}`, parent));
      i++;
    } else if (RULE.test(line)) {
      el("hr", parent);
      i++;
    } else if (QUOTE.test(line)) {
      const body = [];
      while (i < lines.length && (QUOTE.test(lines[i]) || (lines[i].trim() && !startsBlock(lines, i)))) body.push(lines[i++].replace(QUOTE, ""));
      blocks(body, el("blockquote", parent));
    } else if (ITEM.test(line)) {
      i = list(lines, i, parent);
    } else if (isTable(lines, i)) {
      i = table(lines, i, parent);
    } else {
      const p = el("p", parent);
      inline(line.trim(), p);
      for (i++; i < lines.length && lines[i].trim() && !startsBlock(lines, i); i++) {
        el("br", p);
        inline(lines[i].trim(), p);
      }
    }
  }
}

/** A list starting at line `i`; returns the line after it. */
function list(lines, i, parent) {
  const first = ITEM.exec(lines[i]);
  const indent = first[1].length;
  const ordered = /\d/.test(first[2]);
  const node = el(ordered ? "ol" : "ul", parent);
  if (ordered && parseInt(first[2], 10) !== 1) node.start = parseInt(first[2], 10);
  let loose = false;
  while (i < lines.length) {
    const m = ITEM.exec(lines[i]);
    if (!m || m[1].length !== indent || /\d/.test(m[2]) !== ordered) break;
    const body = [m[3]];
    const inner = indent + m[2].length + 1;
    for (i++; i < lines.length; i++) {
      const line = lines[i];
      const depth = line.length - line.trimStart().length;
      if (!line.trim()) {
        const next = lines[i + 1] ?? "";
        const nextDepth = next.length - next.trimStart().length;
        if (next.trim() && nextDepth > indent) {
          body.push("");
          continue;
        }
        const sibling = ITEM.exec(next);
        if (sibling && sibling[1].length === indent) loose = true;
        if (!sibling || sibling[1].length !== indent) break;
        continue;
      }
      const item = ITEM.exec(line);
      if (item && item[1].length <= indent) break;
      if (depth <= indent && startsBlock(lines, i)) break;
      body.push(line.slice(Math.min(depth, inner)));
    }
    while (i < lines.length && !lines[i].trim() && ITEM.exec(lines[i + 1] ?? "")?.[1].length === indent) i++;
    const li = el("li", node);
    blocks(body, li);
    if (!loose && !body.includes("") && li.firstChild?.nodeName === "P") li.firstChild.replaceWith(...li.firstChild.childNodes);
  }
  return i;
}

/** A table starting at line `i` (header, rule, rows); returns the line after it. */
function table(lines, i, parent) {
  const cells = (line) => {
    let s = line.trim();
    if (s.startsWith("|")) s = s.slice(1);
    if (s.endsWith("|") && !s.endsWith("\\|")) s = s.slice(0, -1);
    return s.split(/(?<!\\)\|/).map((c) => c.trim());
  };
  const head = cells(lines[i]);
  const align = cells(lines[i + 1]).map((c) => (c.endsWith(":") ? (c.startsWith(":") ? "align-center" : "align-right") : ""));
  const node = el("table", el("div", parent, "table"));
  const row = el("tr", el("thead", node));
  head.forEach((c, k) => inline(c, el("th", row, align[k])));
  const body = el("tbody", node);
  for (i += 2; i < lines.length && lines[i].includes("|") && lines[i].trim(); i++) {
    const values = cells(lines[i]);
    const tr = el("tr", body);
    head.forEach((_, k) => inline(values[k] ?? "", el("td", tr, align[k])));
  }
  return i;
}

/** Inline markup of `text`, appended to `parent`. */
function inline(text, parent) {
  let plain = "";
  const flush = () => {
    if (plain) parent.append(document.createTextNode(plain));
    plain = "";
  };
  const before = (i) => text[i - 1] ?? " ";
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    const rest = text.slice(i);
    let m;
    if (c === "\\" && ESCAPABLE.test(text[i + 1] ?? "")) {
      plain += text[i + 1];
      i += 2;
      continue;
    }
    if (c === "`") {
      const run = /^`+/.exec(rest)[0];
      const end = closingRun(text, run, i + run.length);
      if (end >= 0) {
        flush();
        const code = text.slice(i + run.length, end);
        el("code", parent).textContent = code.trim() ? code.replace(/^ (.*) $/, "$1") : code;
        i = end + run.length;
      } else {
        plain += run;
        i += run.length;
      }
      continue;
    }
    if ((m = /^(\*\*|__|~~)(?=\S)/.exec(rest)) && (c === "*" || c === "~" || !/\w/.test(before(i)))) {
      const end = closing(text, m[1], i + 2);
      if (end >= 0) {
        flush();
        inline(text.slice(i + 2, end), el(m[1] === "~~" ? "del" : "strong", parent));
        i = end + 2;
        continue;
      }
    }
    if ((c === "*" || c === "_") && /\S/.test(text[i + 1] ?? "") && text[i + 1] !== c && (c === "*" || !/\w/.test(before(i)))) {
      const end = closing(text, c, i + 1);
      if (end >= 0 && (c === "*" || !/\w/.test(text[end + 1] ?? ""))) {
        flush();
        inline(text.slice(i + 1, end), el("em", parent));
        i = end + 1;
        continue;
      }
    }
    if (c === "[" && (m = /^\[([^\]]+)\]\(\s*<?([^\s()<>]+)>?(?:\s+"[^"]*")?\s*\)/.exec(rest))) {
      flush();
      link(m[1], m[2], parent);
      i += m[0].length;
      continue;
    }
    if ((c === "h" || c === "<") && !/\w/.test(before(i)) && (m = /^<?(https?:\/\/[^\s<>]+?)>?(?=[.,;:!?)\]'"]*(\s|$))/.exec(rest))) {
      flush();
      link(document.createTextNode(m[1]), m[1], parent);
      i += m[0].length;
      continue;
    }
    plain += c;
    i++;
  }
  flush();
}

/** Where the delimiter `d` closes an emphasis opened before `from`, or -1. */
function closing(text, d, from) {
  for (let j = text.indexOf(d, from + 1); j > 0; j = text.indexOf(d, j + 1)) {
    if (/\s/.test(text[j - 1])) continue;
    if (d.length === 1 && (text[j + 1] === d || text[j - 1] === d)) continue;
    // Underscores inside a word (`snake_case`, `__init__x`) close nothing.
    if (d[0] === "_" && /\w/.test(text[j + d.length] ?? "")) continue;
    return j;
  }
  return -1;
}

/** Where a run of backticks exactly as long as `run` starts after `from`, or -1. */
function closingRun(text, run, from) {
  for (let j = text.indexOf(run, from); j >= 0; j = text.indexOf(run, j + run.length)) {
    let end = j + run.length;
    if (text[end] !== "`") return j;
    while (text[end] === "`") end++;
    j = end - run.length;
  }
  return -1;
}

/** A link to `href` labelled `label` (Markdown, or a text node as it is);
 *  only the label, as text, when `href` is not a web or mail address. */
function link(label, href, parent) {
  const into = (node) => (typeof label === "string" ? inline(label, node) : node.append(label));
  if (!SAFE_LINK.test(href)) {
    into(parent);
    return;
  }
  const a = el("a", parent);
  a.href = href;
  a.rel = "noopener noreferrer nofollow";
  a.target = "_blank";
  into(a);
}
