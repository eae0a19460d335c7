// The test suite's webhook receiver: a site's back end as fbconnect's connection events
// reach it.  Every delivery is verified with the `standardwebhooks` package (the
// specification's reference implementation, not fbconnect's code), and a copy with one
// byte of the body changed must be rejected by it.
//
//   node receiver.mjs PORT SECRET
//   POST /hook          a delivery: 204 when verified (mode "ok"), 500 (mode "fail"),
//                       never answered (mode "hang"); 400 when it does not verify
//   GET  /_rx           {"deliveries": [...], "rejected": n, "tamper_accepted": n}
//   POST /_rx/mode      body: ok | fail | hang
//   POST /_rx/reset     forget what was received
import http from "node:http";
import { Webhook } from "standardwebhooks";

const [port, secret] = process.argv.slice(2);
const wh = new Webhook(secret);
let mode = "ok";
let deliveries = [];
let attempts = [];
let rejected = 0;
let tamperAccepted = 0;

function verify(body, headers) {
  try {
    wh.verify(body, headers);
    return true;
  } catch {
    return false;
  }
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const body = Buffer.concat(chunks).toString("utf8");
    if (req.method === "POST" && req.url === "/hook") {
      const h = {
        "webhook-id": req.headers["webhook-id"],
        "webhook-timestamp": req.headers["webhook-timestamp"],
        "webhook-signature": req.headers["webhook-signature"],
      };
      attempts.push({ id: h["webhook-id"], mode, at: Date.now() });
      if (!verify(body, h)) {
        rejected++;
        res.writeHead(400).end("signature\n");
        return;
      }
      const tampered = body.length ? body.slice(0, -1) + (body.endsWith("}") ? " " : "}") : "x";
      if (verify(tampered, h)) tamperAccepted++;
      if (mode === "hang") return; // never answered: fbconnect's timeout ends it
      deliveries.push({ headers: { ...req.headers }, body, json: JSON.parse(body), mode, at: Date.now() });
      if (mode === "fail") res.writeHead(500).end("down\n");
      else res.writeHead(204).end();
      return;
    }
    if (req.method === "GET" && req.url === "/_rx") {
      res.writeHead(200, { "Content-Type": "application/json" });
      res.end(JSON.stringify({ deliveries, attempts, rejected, tamper_accepted: tamperAccepted }));
      return;
    }
    if (req.method === "POST" && req.url === "/_rx/mode") {
      mode = body.trim();
      res.writeHead(200).end("ok\n");
      return;
    }
    if (req.method === "POST" && req.url === "/_rx/reset") {
      deliveries = [];
      attempts = [];
      rejected = 0;
      tamperAccepted = 0;
      res.writeHead(200).end("ok\n");
      return;
    }
    res.writeHead(404).end();
  });
});
server.keepAliveTimeout = 1000;
server.listen(Number(port), "127.0.0.1", () => process.stdout.write(`listening ${port}\n`));
