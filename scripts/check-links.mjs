// References between the project's files must lead somewhere (`make test`, phase "links"):
//   - a citation of a document's section, `FILE.md, "Section"` (in code comments, configuration
//     and documents): FILE.md exists and has a heading containing "Section" (any case);
//   - a Markdown link `[text](path#anchor)` in a document: the path exists, and the anchor is a
//     heading of the target (GitHub's slugs);
//   - a document named in passing (`docs/x.md`, `ARCHITECTURE.md`): it exists.
// Usage: node scripts/check-links.mjs [root]   (exit 1 listing every broken reference)
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(process.argv[2] ?? join(dirname(fileURLToPath(import.meta.url)), '..'));
const files = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard'], { cwd: root, encoding: 'utf8' })
  .split('\n')
  .filter((f) => /\.(md|rs|toml|mjs|js|sh|yml|json)$/.test(f) && !f.includes('node_modules/') && !f.endsWith('package-lock.json') && existsSync(join(root, f)))
  // This file describes the citation forms it checks.
  .filter((f) => f !== 'scripts/check-links.mjs');

const headingsCache = new Map();
function headings(file) {
  if (!headingsCache.has(file)) {
    const text = readFileSync(join(root, file), 'utf8');
    const found = [];
    let fenced = false;
    for (const line of text.split('\n')) {
      if (line.startsWith('```')) fenced = !fenced;
      const m = !fenced && /^#{1,6}\s+(.*)$/.exec(line);
      if (m) found.push(m[1].trim());
    }
    headingsCache.set(file, found);
  }
  return headingsCache.get(file);
}

/** GitHub's anchor for a heading. */
function slug(heading) {
  return heading.toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').trim().replace(/\s/g, '-');
}

/** The repository file a reference names from `from` (relative to it, or to the root). */
function target(from, path) {
  for (const base of [dirname(from), '.']) {
    const candidate = normalize(join(base, path));
    if (existsSync(join(root, candidate))) return candidate;
  }
  return null;
}

const broken = [];
for (const file of files) {
  const text = readFileSync(join(root, file), 'utf8');
  const lines = text.split('\n');
  lines.forEach((line, i) => {
    const at = `${file}:${i + 1}`;
    // FILE.md, "Section"
    for (const m of line.matchAll(/([A-Za-z0-9_./-]+\.md),?\s+"([^"]+)"/g)) {
      const doc = target(file, m[1]);
      if (!doc) {
        broken.push(`${at}: ${m[1]} does not exist`);
      } else if (!headings(doc).some((h) => h.toLowerCase().includes(m[2].toLowerCase()))) {
        broken.push(`${at}: ${m[1]} has no section "${m[2]}"`);
      }
    }
    if (!file.endsWith('.md')) return;
    // [text](path#anchor), relative links only
    for (const m of line.matchAll(/\]\(([^)\s]+)\)/g)) {
      const link = m[1];
      if (/^[a-z]+:/i.test(link)) continue;
      const [path, anchor] = link.split('#');
      const doc = path ? target(file, path) : file;
      if (!doc) {
        broken.push(`${at}: link to ${path}, which does not exist`);
      } else if (anchor && doc.endsWith('.md') && !headings(doc).some((h) => slug(h) === anchor)) {
        broken.push(`${at}: ${doc} has no heading #${anchor}`);
      }
    }
    // A document named in passing.
    for (const m of line.matchAll(/(?<![\w/.-])((?:docs\/)?[A-Za-z0-9_-]+\.md)(?![\w/-])/g)) {
      if (!target(file, m[1]) && !/^[a-z]+\.md$/.test(m[1])) broken.push(`${at}: ${m[1]} does not exist`);
    }
  });
}

if (broken.length) {
  for (const b of broken) console.error(`links: ${b}`);
  console.error(`links: ${broken.length} broken reference(s)`);
  process.exit(1);
}
console.log(`links: every reference in ${files.length} files leads somewhere`);
