// An ioredis writer with the library's default settings: discovers the
// master through the Sentinels ({sentinels, name}) and writes SET + WAIT 1
// in a loop. One line per write acknowledged by a replica:
//   A <key> <issued unix ns> <acknowledged unix ns>
// "S ..." (same fields) per write the master took that no replica
// acknowledged in time, and "E <error>" per failed attempt. Arguments: sentinels (host:port,...),
// master name, password, Sentinel password, key prefix.
const Redis = require("ioredis");

const [sentinels, name, password, sentinelPassword, prefix] = process.argv.slice(2);
const r = new Redis({
  sentinels: sentinels.split(",").map((a) => {
    const i = a.lastIndexOf(":");
    return { host: a.slice(0, i), port: Number(a.slice(i + 1)) };
  }),
  name,
  password,
  sentinelPassword: sentinelPassword || undefined,
});
r.on("error", () => {}); // reconnects are the library's business
const nowNs = () => BigInt(Math.round((performance.timeOrigin + performance.now()) * 1e6));
const sleep = (ms) => new Promise((res) => setTimeout(res, ms));

(async () => {
  for (let i = 1; ; i++) {
    const key = `${prefix}:${i}`;
    const issued = nowNs();
    try {
      const res = await r.pipeline().set(key, i).call("wait", 1, 500).exec();
      if (!res[0][0] && !res[1][0] && Number(res[1][1]) >= 1) {
        process.stdout.write(`A ${key} ${issued} ${nowNs()}\n`);
      } else if (!res[0][0] && !res[1][0]) {
        process.stdout.write(`S ${key} ${issued} ${nowNs()}\n`);
      } else {
        process.stdout.write(`E ${res[0][0] || res[1][0]}\n`);
      }
    } catch (e) {
      process.stdout.write(`E ${e.name}\n`);
      await sleep(5);
    }
  }
})();
