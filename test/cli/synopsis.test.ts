/**
 * The README's synopsis of the command line lists every option of every command, and no option
 * that does not exist: it is compared with the options registered with commander.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildProgram } from '../../src/cli/main';

const readme = readFileSync(path.resolve(__dirname, '..', '..', 'README.md'), 'utf8');

/** The flags the README's synopsis block names, by command ('' for the program's own). */
function synopsisFlags(): Map<string, Set<string>> {
  const section = readme.slice(readme.indexOf('## The command line'));
  const block = /```text\n([\s\S]*?)```/.exec(section)![1];
  const byCommand = new Map<string, Set<string>>();
  let current = '';
  for (const line of block.split('\n')) {
    const head = /^cmae (?!-)(\S+)/.exec(line);
    if (head) current = head[1];
    else if (line.startsWith('cmae ')) current = '';
    if (!byCommand.has(current)) byCommand.set(current, new Set());
    for (const flag of line.match(/--[a-z][a-z0-9-]*/g) ?? []) if (flag !== '--help') byCommand.get(current)!.add(flag);
  }
  return byCommand;
}

describe('the README synopsis', () => {
  it('lists exactly the options commander registers, for every command', () => {
    const program = buildProgram();
    const registered = new Map<string, Set<string>>([['', new Set(program.options.map((o) => o.long!))]]);
    for (const command of program.commands) registered.set(command.name(), new Set(command.options.map((o) => o.long!)));
    const listed = synopsisFlags();
    expect([...listed.keys()].sort()).toEqual([...registered.keys()].sort());
    for (const [name, flags] of registered) {
      expect([...listed.get(name)!].sort(), `cmae ${name}`).toEqual([...flags].sort());
    }
    expect(registered.get('pretrain')!.size).toBeGreaterThan(20);
    expect(registered.get('')).toContain('--version');
  });
});
