// SPDX-License-Identifier: GPL-3.0-or-later
//
// Flamenco job type "hiptah-batch" (Flamenco names a job type after its file,
// underscores becoming dashes). Copy this file into the Manager's `scripts/`
// folder (next to the flamenco-manager executable) and restart the Manager.
//
// One job = one HiPtah batch: the input's prompts are cut into shard tasks,
// each running `blender -b -c hiptah batch --shard I/N` into its own folder on
// shared storage, then one merge task (after all of them) builds one Asset
// Browser library. See docs/farm.md.
//
// The HiPtah API key is deliberately NOT a setting: job settings are stored by
// the Manager and shown in its web interface. Workers read HIPTAH_API_KEY from
// their own environment.

const PLAN_CONCURRENCY = { creator: 10, pro: 30 };

const JOB_TYPE = {
    label: "HiPtah Batch",
    description: "Generate 3D models from a list of prompts with the HiPtah API, in shards, into one asset library.",
    settings: [
        { key: "input_file", type: "string", subtype: "file_path", required: true,
          description: "Prompts (.txt, .csv, .tsv or .json) on shared storage every worker can read" },
        { key: "output_dir", type: "string", subtype: "dir_path", required: true,
          description: "Shared folder: shards/shard-NNNN per shard, library/ for the merged asset library" },
        { key: "shard_count", type: "int32", default: 4, propargs: { min: 1, max: 10000 }, required: true,
          description: "How many shard tasks the input is cut into" },
        { key: "shard_concurrency", type: "int32", default: 10, propargs: { min: 1, max: 100 }, required: true,
          description: "HiPtah jobs each shard keeps in flight" },
        { key: "plan", type: "string", choices: ["creator", "pro", "enterprise"], default: "pro", required: true,
          description: "The HiPtah plan whose concurrent-job limit all shards share" },
        { key: "plan_concurrency", type: "int32", default: 0, propargs: { min: 0 },
          description: "The plan's concurrent jobs (0: the plan's published limit; required for enterprise)" },
        { key: "template", type: "string", default: "",
          description: "CSV template such as 'a {color} {object}' (empty: the prompt column or line)" },
        { key: "previews", type: "bool", default: true,
          description: "Render an asset preview for each model (costs worker time)" },
        { key: "batch_id", type: "string", default: "",
          description: "Part of each row's idempotency key (empty: a hash of the input). Keep it to resubmit the same batch" },
    ]
};

function compileJob(job) {
    const settings = job.settings;
    refuseSecrets(settings);
    const shardCount = positiveInt(settings.shard_count, "shard_count");
    const shardConcurrency = positiveInt(settings.shard_concurrency, "shard_concurrency");
    const planLimit = planConcurrency(settings);
    if (shardConcurrency > planLimit) {
        throw `shard_concurrency ${shardConcurrency} is above the plan's ${planLimit} concurrent jobs`;
    }
    // Shards running at once, so that their concurrencies add up to at most the plan's limit.
    const lanes = Math.min(shardCount, Math.floor(planLimit / shardConcurrency));
    const outputDir = String(settings.output_dir);
    const shardsDir = path.join(outputDir, "shards");

    const shardTasks = [];
    for (let i = 1; i <= shardCount; i++) {
        const task = author.Task(`shard-${pad(i)}-of-${pad(shardCount)}`, "hiptah");
        task.addCommand(blenderCommand(batchArgs(settings, i, shardCount, shardConcurrency,
                                                 path.join(shardsDir, `shard-${pad(i)}`))));
        // Lane i % lanes: shard i waits for shard i - lanes, so at most `lanes` run at once
        // whatever the number of workers. A failed shard holds back its lane until retried.
        if (i > lanes) {
            task.addDependency(shardTasks[i - 1 - lanes]);
        }
        shardTasks.push(task);
    }
    const merge = author.Task("merge-library", "hiptah");
    merge.addCommand(blenderCommand(["-c", "hiptah", "merge", "--out", path.join(outputDir, "library"), shardsDir]));
    for (const task of shardTasks) {
        merge.addDependency(task);
        job.addTask(task);
    }
    job.addTask(merge);
    print(`hiptah-batch: ${shardCount} shard(s), at most ${lanes} at once x ${shardConcurrency} jobs ` +
          `(plan limit ${planLimit}), then merge-library`);
}

function batchArgs(settings, index, count, concurrency, outDir) {
    const args = ["--online-mode", "-c", "hiptah", "batch", String(settings.input_file),
                  "--shard", `${index}/${count}`, "--out", outDir,
                  "--plan", String(settings.plan), "--concurrency", String(concurrency),
                  // The farm decided to run this: a quota check per shard would only see its own state.
                  "--allow-over-quota"];
    if (settings.template) {
        args.push("--template", String(settings.template));
    }
    if (settings.batch_id) {
        args.push("--batch-id", String(settings.batch_id));
    }
    if (settings.previews === false) {
        args.push("--no-render");
    }
    return args;
}

function blenderCommand(args) {
    // {blender} and {blenderArgs} are the Manager's variables (per platform); blendfile
    // is empty: the hiptah command opens and saves its own library files.
    return author.Command("blender-render", {
        exe: "{blender}",
        exeArgs: "{blenderArgs}",
        argsBefore: [],
        blendfile: "",
        args: args,
    });
}

function planConcurrency(settings) {
    const given = Number(settings.plan_concurrency || 0);
    if (given > 0) {
        return positiveInt(given, "plan_concurrency");
    }
    const known = PLAN_CONCURRENCY[settings.plan];
    if (!known) {
        throw `plan '${settings.plan}' has a negotiated limit: set plan_concurrency`;
    }
    return known;
}

function positiveInt(value, name) {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1) {
        throw `${name} must be a whole number of at least 1, not ${value}`;
    }
    return n;
}

function refuseSecrets(settings) {
    // Settings are stored and shown in the web interface: never a place for the API key.
    for (const key of Object.keys(settings)) {
        if (/api[_-]?key|secret|token|password/i.test(key)) {
            throw `setting '${key}' looks like a secret; workers read HIPTAH_API_KEY from their environment instead`;
        }
    }
}

function pad(n) {
    return String(n).padStart(4, "0");
}
