// A Node stand-in for Flamenco Manager's job-compiler runtime (goja), written from
// Flamenco's own source (internal/manager/job_compilers/: scripts.go newGojaVM,
// author.go, js_globals.go, js_path.go, job_compilers.go Compile/getJobTypeInfo),
// so a job type script is run with the same globals, calls and argument shapes:
//
//   globals   print, alert, frameChunker, frameCount, formatTimestampLocal, shellSplit,
//             author (Task, Command), path (basename, dirname, join, stem), process
//   job       the AuthoredJob with goja's UncapFieldNameMapper names: jobID, name,
//             jobType, priority, status, created, settings, metadata, storage, tasks,
//             addTask(task)
//   task      author.Task(name, type): name and type trimmed, both required; priority 50;
//             addCommand(cmd) takes only author.Command results; addDependency(task) only
//             author.Task results
//   job.addTask copies the task as it is at that moment (Go appends *at, a value copy):
//             commands or dependencies added afterwards are not part of the job.
//
// Usage: node flamenco_runtime.js SCRIPT.js describe            -> JOB_TYPE as JSON
//        node flamenco_runtime.js SCRIPT.js compile SUBMITTED.json -> the authored job as JSON
// A script error (a thrown string or Error) exits 3 with {"error": "..."}.
"use strict";

const fs = require("fs");
const vm = require("vm");
const posix = require("path").posix;
const crypto = require("crypto");

const prints = [];

class AuthoredCommand {
    constructor(name, parameters, totalStepCount) {
        this.name = name;
        this.parameters = parameters;
        this.totalStepCount = totalStepCount;
    }
}

class AuthoredTask {
    constructor(name, type) {
        this.uUID = crypto.randomUUID();
        this.name = name;
        this.type = type;
        this.priority = 50;
        this.commands = [];
        this.dependencies = [];
    }
    addCommand(cmd) {
        if (!(cmd instanceof AuthoredCommand)) {
            throw new TypeError("task.addCommand(cmd): cmd must come from author.Command()");
        }
        this.commands.push(new AuthoredCommand(cmd.name, cmd.parameters, cmd.totalStepCount));
    }
    addDependency(dep) {
        if (!(dep instanceof AuthoredTask)) {
            throw new TypeError("task.addDependency(task): task must come from author.Task()");
        }
        this.dependencies.push(dep);
    }
}

function toGoString(value, what) {
    // goja converts JS values to Go strings for string parameters (String() semantics).
    if (value === undefined || value === null) {
        return "";
    }
    if (typeof value === "object") {
        throw new TypeError(`${what}: expected a string`);
    }
    return String(value);
}

const author = {
    Task(name, taskType) {
        name = toGoString(name, "author.Task name").trim();
        taskType = toGoString(taskType, "author.Task type").trim();
        if (name === "") {
            throw new Error("author.Task(name, type): name is required");
        }
        if (taskType === "") {
            throw new Error("author.Task(name, type): type is required");
        }
        return new AuthoredTask(name, taskType);
    },
    Command(cmdName, parameters, totalStepCount) {
        if (parameters === null || typeof parameters !== "object" || Array.isArray(parameters)) {
            throw new TypeError("author.Command(name, parameters): parameters must be an object (map)");
        }
        const steps = totalStepCount === undefined ? 0 : Number(totalStepCount);
        if (!Number.isInteger(steps)) {
            throw new TypeError("author.Command: totalStepCount must be an integer");
        }
        return new AuthoredCommand(toGoString(cmdName, "author.Command name"), parameters, steps);
    },
};

// crosspath: forward slashes, cleaned like Go's path package.
const pathModule = {
    basename: (p) => posix.basename(String(p).replace(/\\/g, "/")),
    dirname: (p) => posix.dirname(String(p).replace(/\\/g, "/")),
    join: (...parts) => posix.join(...parts.map((p) => String(p).replace(/\\/g, "/"))),
    stem: (p) => { const b = posix.basename(String(p)); const e = posix.extname(b); return b.slice(0, b.length - e.length); },
};

function frameRangeExplode(range) {
    const frames = new Set();
    for (const part of range.replace(/\.\./g, "-").split(",")) {
        const se = part.split("-");
        if (se.length === 1) { frames.add(parseInt(se[0].trim(), 10)); }
        else if (se.length === 2) {
            for (let f = parseInt(se[0].trim(), 10); f <= parseInt(se[1].trim(), 10); f++) { frames.add(f); }
        } else { throw new Error(`invalid range "${range}": ${part}`); }
    }
    return [...frames].sort((a, b) => a - b);
}

function makeContext() {
    const context = {
        print: (...args) => { prints.push(args.map(String).join(" ")); },
        alert: (...args) => { prints.push("ALERT " + args.map(String).join(" ")); },
        frameChunker: (range, size) => {
            const frames = frameRangeExplode(String(range).trim());
            const chunks = [];
            for (let i = 0; i < frames.length; i += size) { chunks.push(frames.slice(i, i + size).join(",")); }
            return chunks;
        },
        frameCount: (range) => frameRangeExplode(String(range)).length,
        formatTimestampLocal: (t) => new Date(t).toISOString().replace(/[-:]/g, "").slice(0, 15),
        shellSplit: (s) => String(s).split(/\s+/).filter(Boolean),
        author,
        path: pathModule,
        process: { platform: process.platform },
    };
    return vm.createContext(context);
}

function load(scriptPath) {
    const ctx = makeContext();
    vm.runInContext(fs.readFileSync(scriptPath, "utf-8"), ctx, { filename: scriptPath });
    return ctx;
}

function main() {
    const [scriptPath, mode, submittedPath] = process.argv.slice(2);
    const ctx = load(scriptPath);
    const jobType = vm.runInContext("typeof JOB_TYPE === 'undefined' ? undefined : JOB_TYPE", ctx);
    if (jobType === undefined) {
        throw new Error("does not define a JOB_TYPE object");
    }
    if (mode === "describe") {
        process.stdout.write(JSON.stringify(JSON.parse(JSON.stringify(jobType))));
        return;
    }
    const compileJob = vm.runInContext("typeof compileJob === 'function' ? compileJob : undefined", ctx);
    if (compileJob === undefined) {
        throw new Error("does not define a compileJob(job) function");
    }
    const sj = JSON.parse(fs.readFileSync(submittedPath, "utf-8"));
    const tasks = [];
    const job = {
        jobID: crypto.randomUUID(),
        workerTagUUID: sj.worker_tag || "",
        name: sj.name,
        jobType: sj.type,
        priority: sj.priority,
        status: "under-construction",
        created: new Date(),
        settings: { ...(sj.settings || {}) },
        metadata: { ...(sj.metadata || {}) },
        storage: { shamanCheckoutID: (sj.storage && sj.storage.shaman_checkout_id) || "" },
        tasks,
        addTask(task) {
            if (!(task instanceof AuthoredTask)) {
                throw new TypeError("job.addTask(task): task must come from author.Task()");
            }
            // A value copy, as Go's `aj.Tasks = append(aj.Tasks, *at)`.
            tasks.push({ uuid: task.uUID, name: task.name, type: task.type, priority: task.priority,
                         commands: task.commands.slice(), dependencies: task.dependencies.map((d) => d.uUID) });
        },
    };
    compileJob(job);
    process.stdout.write(JSON.stringify({ tasks, settings: job.settings, prints }));
}

try {
    main();
} catch (err) {
    process.stdout.write(JSON.stringify({ error: String(err && err.message ? err.message : err), prints }));
    process.exit(3);
}
