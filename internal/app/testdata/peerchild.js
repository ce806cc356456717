'use strict';
// The peer child of BenchmarkPeerFanout (internal/app/peerbench_test.go): one peer's stream
// handler, built as its README builds it, in a process of its own, served to the driver over
// plain HTTP on 127.0.0.1 with the handler child's control API: POST /invoke (the body is the
// Lambda event, handed to the handler as the Lambda runtime would), GET /stats (this process's
// CPU time, peak RSS and run-queue wait), POST /reset-peak. It prints its URL on its first line,
// and ends when its stdin closes.
//
// PEER (alg or gls) selects the peer; BENCH_DYNAMODB is dynalite's URL; BENCH_PEER_TABLES names
// its tables (JSON). AWS credentials and region come from the environment, as in Lambda.
const fs = require('fs');
const http = require('http');
const path = require('path');

const peers = { alg: './peer-alg/handler.js', gls: './peer-gls.js' };
const peer = process.env.PEER;
if (!peers[peer]) {
  console.error(`peer child: PEER=${peer}: want alg or gls`);
  process.exit(2);
}
const build = require(path.join(__dirname, peers[peer]));
const { handler, errors } = build({
  dynamodbEndpoint: process.env.BENCH_DYNAMODB,
  tables: JSON.parse(process.env.BENCH_PEER_TABLES),
});

let invocation = 0;
// lambdaContext is what the Lambda Node runtime passes as the handler's second argument.
function lambdaContext() {
  const deadline = Date.now() + 5 * 60 * 1000;
  invocation++;
  return {
    awsRequestId: `bench-${process.pid}-${invocation}`,
    functionName: `peer-${peer}`,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:us-east-1:123456789012:function:peer-${peer}`,
    memoryLimitInMB: '1024',
    logGroupName: `/aws/lambda/peer-${peer}`,
    logStreamName: 'bench',
    callbackWaitsForEmptyEventLoop: true,
    getRemainingTimeInMillis: () => deadline - Date.now(),
  };
}

function hwm() {
  const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

function runqWait() {
  let sum = 0;
  for (const t of fs.readdirSync('/proc/self/task')) {
    try {
      sum += Number(fs.readFileSync(`/proc/self/task/${t}/schedstat`, 'utf8').split(' ')[1]);
    } catch {
      // the thread ended
    }
  }
  return sum;
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', async () => {
    try {
      if (req.method === 'POST' && req.url === '/invoke') {
        const event = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        const before = errors.count;
        const out = await handler(event, lambdaContext());
        if (errors.count !== before) {
          throw new Error(`${errors.count - before} errors reported by the peer during the invocation, the first: ${errors.first}`);
        }
        res.end(JSON.stringify(out === undefined ? {} : out));
      } else if (req.method === 'GET' && req.url === '/stats') {
        const cpu = process.cpuUsage();
        res.end(JSON.stringify({ CPU: (cpu.user + cpu.system) * 1000, HWM: hwm(), RunqWait: runqWait() }));
      } else if (req.method === 'POST' && req.url === '/reset-peak') {
        if (global.gc) global.gc();
        fs.writeFileSync('/proc/self/clear_refs', '5');
        res.end('{}');
      } else {
        res.statusCode = 404;
        res.end('{}');
      }
    } catch (err) {
      res.statusCode = 500;
      res.end(String(err && err.stack ? err.stack : err));
    }
  });
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`http://127.0.0.1:${server.address().port}\n`);
});
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
