#!/usr/bin/env python3
"""Fail on a dependency cycle between the library's modules.

A module is a pair src/<name>.c + src/<name>.h; a header src/<name>_internal.h
is the private part of module <name>, shared with the other .c files that
implement what <name>.h declares. Two graphs are checked:

* includes: module A depends on B when A's .c or .h has `#include "B.h"`;
* links (with --nm and --archive): module A depends on B when A's object
  file uses a symbol that B's object file defines, as `nm` shows them; an
  umbrella header that declares the functions of several modules hides
  their cycles from the first graph, not from this one.

Every cycle is reported with its path, and with the lines (or symbols) that
make each step, e.g.:
  include cycle: platform -> worker -> platform
    platform.c includes worker.h
    worker.c includes platform.h
Exit status 1 when there is one, 0 otherwise.
"""
import argparse
import os
import re
import subprocess
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def module_of(file_name):
    """The module a file of src/ belongs to."""
    stem = file_name[:-2]
    return stem[:-len('_internal')] if stem.endswith('_internal') else stem


def include_graph(src):
    """Edges module -> {module: why} from the #include "..." lines."""
    names = [n for n in os.listdir(src) if n.endswith(('.c', '.h'))]
    headers = {n for n in names if n.endswith('.h')}
    graph = {}
    for name in sorted(names):
        mod = module_of(name)
        graph.setdefault(mod, {})
        with open(os.path.join(src, name), encoding='utf-8', errors='replace') as f:
            for number, line in enumerate(f, 1):
                m = INCLUDE.match(line)
                if not m or m.group(1) not in headers:
                    continue  # the public header, or a file of another tree
                dep = module_of(m.group(1))
                if dep != mod:
                    graph[mod].setdefault(dep, f'{name}:{number} includes {m.group(1)}')
    return graph


def link_graph(nm, archive):
    """Edges module -> {module: why} from the objects' defined and undefined symbols."""
    out = subprocess.run([nm, '-A', archive], check=True, capture_output=True,
                         text=True).stdout
    defined, used = {}, {}
    for line in out.splitlines():
        # "<archive>:<member>: <value> <type> <symbol>", value blank for U
        parts = line.rsplit(':', 1)
        if len(parts) != 2:
            continue
        member = parts[0].rsplit(':', 1)[-1]
        fields = parts[1].split()
        if len(fields) < 2:
            continue
        kind, symbol = fields[-2], fields[-1]
        mod = re.sub(r'\.c\.o$|\.o$', '', os.path.basename(member))
        if kind == 'U':
            used.setdefault(mod, set()).add(symbol)
        elif kind.isupper() or kind in 'uvw':
            defined.setdefault(symbol, mod)
    graph = {mod: {} for mod in set(used) | set(defined.values())}
    for mod, symbols in used.items():
        for symbol in sorted(symbols):
            dep = defined.get(symbol)
            if dep and dep != mod:
                graph[mod].setdefault(dep, f'{mod} calls {symbol}() of {dep}')
    return graph


def cycles(graph):
    """The shortest cycle through each module (a list of modules, first ==
    last) of every strongly connected component of more than one module
    (Tarjan), each cycle once."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, {})):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            for start in sorted(component) if len(component) > 1 else []:
                path = cycle_in(graph, set(component), start)
                turn = path.index(min(path[:-1]))
                path = path[turn:-1] + path[:turn] + [path[turn]]
                if path not in found:
                    found.append(path)

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def cycle_in(graph, component, start):
    """A shortest cycle through @start within @component (breadth-first)."""
    previous = {start: None}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(graph[v]):
            if w == start:
                path = [v]
                while previous[path[-1]] is not None:
                    path.append(previous[path[-1]])
                return path[::-1] + [start]
            if w in component and w not in previous:
                previous[w] = v
                queue.append(w)
    return sorted(component)


def report(kind, graph):
    found = cycles(graph)
    for path in found:
        print(f'{kind} cycle: ' + ' -> '.join(path))
        for a, b in zip(path, path[1:]):
            print(f'    {graph[a][b]}')
    return len(found)


def self_test():
    """The check finds a cycle it must find, and none where there is none."""
    import tempfile
    with tempfile.TemporaryDirectory() as tree:
        files = {
            'a.h': '#include "b.h"\n',  # a -> b
            'b.h': '',
            'b.c': '#include "b.h"\n#include <a.h>\n',  # system include: no edge
            'c.h': '#include "async_platform.h"\n',  # not a module of the tree
            'c.c': '#include "c.h"\n#include "a.h"\n',  # c -> a
        }
        for name, text in files.items():
            with open(os.path.join(tree, name), 'w', encoding='utf-8') as f:
                f.write(text)
        assert cycles(include_graph(tree)) == [], cycles(include_graph(tree))
        with open(os.path.join(tree, 'b.c'), 'a', encoding='utf-8') as f:
            f.write('  #  include "c.h" /* closes c -> a -> b -> c */\n')
        found = cycles(include_graph(tree))
        assert found == [['a', 'b', 'c', 'a']], found
        graph = include_graph(tree)
        assert graph['b']['c'] == 'b.c:3 includes c.h', graph['b']
    # Two pairs in one strongly connected component: both are reported.
    graph = {'p': {'w': 'p>w', 'm': 'p>m'}, 'w': {'p': 'w>p'}, 'm': {'p': 'm>p'}, 'x': {}}
    assert cycles(graph) == [['m', 'p', 'm'], ['p', 'w', 'p']], cycles(graph)
    print('self-test passed')
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--self-test', action='store_true',
                        help='check the checker on trees made up for it')
    parser.add_argument('src', nargs='?', help='the directory of the modules (src/)')
    parser.add_argument('--nm', help='the nm program, for the link graph')
    parser.add_argument('--archive', help='the static library of the modules')
    args = parser.parse_args()
    if args.self_test:
        return self_test()
    if not args.src:
        parser.error('the directory of the modules is missing')
    count = report('include', include_graph(args.src))
    if args.nm and args.archive:
        count += report('link', link_graph(args.nm, args.archive))
    if count:
        print(f'{count} cycle(s) between modules: a module may depend only on modules '
              'that do not depend on it', file=sys.stderr)
        return 1
    print('no cycles between modules')
    return 0


if __name__ == '__main__':
    sys.exit(main())
