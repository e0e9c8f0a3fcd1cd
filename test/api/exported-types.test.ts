/**
 * Every type a public signature names is exported from the package's entry point, so that a user
 * can name it too (`import type { ImagesInput } from 'cmae'`). Read with the TypeScript compiler
 * over src/index.ts: each exported function, class (its public members), interface and type alias,
 * the `kernels` namespace included, and each project type their annotations reference.
 */
import * as path from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const root = path.resolve(__dirname, '..', '..');
const entry = path.join(root, 'src', 'index.ts');

function isInternal(node: ts.Node): boolean {
  return ts.getJSDocTags(node).some((tag) => tag.tagName.text === 'internal');
}

function isHidden(member: ts.Node): boolean {
  const flags = ts.getCombinedModifierFlags(member as ts.Declaration);
  const name = (member as ts.NamedDeclaration).name;
  return (flags & (ts.ModifierFlags.Private | ts.ModifierFlags.Protected)) !== 0 || (name !== undefined && ts.isPrivateIdentifier(name)) || isInternal(member);
}

/** `where` → the project's type declarations its public annotations reference but the entry point does not export. */
function unexportedTypes(): Map<string, Set<string>> {
  const program = ts.createProgram([entry], { strict: true, target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.CommonJS, esModuleInterop: true, skipLibCheck: true, types: ['node'] });
  const checker = program.getTypeChecker();
  const resolve = (s: ts.Symbol) => (s.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(s) : s);
  const exported = new Set<ts.Symbol>();
  const publicSymbols: [string, ts.Symbol][] = [];
  const collect = (moduleSymbol: ts.Symbol, prefix: string) => {
    for (const s of checker.getExportsOfModule(moduleSymbol)) {
      const target = resolve(s);
      if (target.flags & ts.SymbolFlags.ValueModule && target.declarations?.some(ts.isSourceFile)) {
        collect(target, `${prefix}${s.name}.`); // export * as kernels
        continue;
      }
      exported.add(target);
      publicSymbols.push([`${prefix}${s.name}`, target]);
    }
  };
  collect(checker.getSymbolAtLocation(program.getSourceFile(entry)!)!, '');

  const missing = new Map<string, Set<string>>();
  const inProject = (d: ts.Declaration) => {
    const file = d.getSourceFile().fileName;
    return file.startsWith(path.join(root, 'src')) && !file.includes('node_modules');
  };
  const visitType = (node: ts.Node | undefined, where: string) => {
    if (!node) return;
    const walk = (n: ts.Node): void => {
      if (ts.isTypeReferenceNode(n) || ts.isExpressionWithTypeArguments(n)) {
        const at = ts.isTypeReferenceNode(n) ? n.typeName : n.expression;
        const symbol = checker.getSymbolAtLocation(ts.isQualifiedName(at) ? at.right : at);
        const target = symbol && resolve(symbol);
        const declaration = target?.declarations?.[0];
        const isTypeDeclaration =
          declaration && (ts.isInterfaceDeclaration(declaration) || ts.isTypeAliasDeclaration(declaration) || ts.isClassDeclaration(declaration) || ts.isEnumDeclaration(declaration));
        if (target && isTypeDeclaration && inProject(declaration) && !exported.has(target)) {
          if (!missing.has(target.name)) missing.set(target.name, new Set());
          missing.get(target.name)!.add(where);
        }
      }
      if (ts.isTypeQueryNode(n)) return; // typeof x: a value, not a type to export
      ts.forEachChild(n, walk);
    };
    walk(node);
  };
  const visitSignature = (d: ts.SignatureDeclaration, where: string) => {
    for (const t of d.typeParameters ?? []) visitType(t.constraint, where);
    for (const p of d.parameters) visitType(p.type, where);
    visitType(d.type, where);
  };
  for (const [name, symbol] of publicSymbols) {
    for (const d of symbol.declarations ?? []) {
      if (!inProject(d)) continue;
      if (ts.isFunctionDeclaration(d)) visitSignature(d, name);
      else if (ts.isVariableDeclaration(d)) visitType(d.type, name);
      else if (ts.isTypeAliasDeclaration(d)) visitType(d.type, name);
      else if (ts.isInterfaceDeclaration(d)) {
        for (const h of d.heritageClauses ?? []) for (const t of h.types) visitType(t, name);
        for (const m of d.members) if (!isInternal(m)) ts.forEachChild(m, (c) => visitType(c, `${name}.${m.name?.getText() ?? '()'}`));
      } else if (ts.isClassDeclaration(d)) {
        for (const h of d.heritageClauses ?? []) for (const t of h.types) visitType(t, name);
        for (const m of d.members) {
          if (isHidden(m)) continue;
          const where = `${name}.${m.name?.getText() ?? 'constructor'}`;
          if (ts.isMethodDeclaration(m) || ts.isConstructorDeclaration(m) || ts.isGetAccessorDeclaration(m) || ts.isSetAccessorDeclaration(m)) visitSignature(m, where);
          else if (ts.isPropertyDeclaration(m)) visitType(m.type, where);
        }
      }
    }
  }
  return missing;
}

describe('the public API', () => {
  it('exports every type its public signatures name', () => {
    const missing = unexportedTypes();
    const report = [...missing].map(([type, places]) => `${type} (named by ${[...places].slice(0, 3).join(', ')})`);
    expect(report).toEqual([]);
  });
});
