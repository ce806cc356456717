// Package deploy tests the deployment: serverless.yml at the repository root, through osls (the
// Serverless Framework the Makefile runs), offline. It has only tests.
package deploy

import (
	"archive/zip"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/realtime-gql/lambdaws/graph"
	"github.com/realtime-gql/lambdaws/internal/cors"
	"github.com/realtime-gql/lambdaws/internal/devproc"
	"github.com/realtime-gql/lambdaws/internal/envelope"
	"github.com/realtime-gql/lambdaws/internal/testenv"
)

// The stage the test packages, as `make deploy` deploys it.
const stage = "prod"

// standInArtifact is the file name of the stand-in zip; the function's S3Key ends with it when
// ARTIFACT is honoured (the default, dist/bootstrap.zip, has another name).
const standInArtifact = "stand-in-bootstrap.zip"

// TestServerlessTemplate runs `serverless package --stage prod` on the repository's
// serverless.yml, offline, and checks the CloudFormation template it generates resource by
// resource and property by property. Then it checks that those checks catch the mistakes they
// exist for, by breaking copies of the template.
func TestServerlessTemplate(t *testing.T) {
	raw := packageTemplate(t)

	t.Run("template", func(t *testing.T) {
		for _, problem := range checkTemplate(decode(t, raw)) {
			t.Error(problem)
		}
	})

	t.Run("alarms notify the topic given as a parameter", func(t *testing.T) {
		const topic = "arn:aws:sns:us-east-1:123456789012:ops"
		tpl := decode(t, packageTemplate(t, "--param=alarmTopicArn="+topic))
		for _, problem := range checkTemplate(tpl) {
			t.Error(problem)
		}
		if got := alarmTopic(tpl); got != topic {
			t.Errorf("the alarms notify %q, want %q", got, topic)
		}
		if got := alarmTopic(decode(t, raw)); got != "" {
			t.Errorf("without the parameter the alarms notify %q, want nothing", got)
		}
	})

	// GraphiQL is public: it is served only when the deployment turns it on.
	t.Run("playground parameter", func(t *testing.T) {
		on := decode(t, packageTemplate(t, "--param=playground=true"))
		for _, problem := range checkTemplateWith(on, "true") {
			t.Error(problem)
		}
	})

	t.Run("checks catch mistakes", func(t *testing.T) {
		for _, m := range mutations {
			t.Run(m.name, func(t *testing.T) {
				tpl := decode(t, raw)
				m.apply(t, tpl)
				problems := checkTemplate(tpl)
				t.Logf("problems found:\n%s", strings.Join(problems, "\n"))
				if len(problems) == 0 {
					t.Fatalf("the checks accept a template where %s", m.name)
				}
				if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, m.want) }) {
					t.Errorf("no problem mentions %q; got:\n%s", m.want, strings.Join(problems, "\n"))
				}
			})
		}
	})
}

// packageTemplate packages the service with a stand-in artifact and returns the update-stack
// template. Nothing here talks to AWS (see serverless).
func packageTemplate(t *testing.T, extra ...string) []byte {
	t.Helper()
	root := devproc.Root(t)
	pkg := filepath.Join(t.TempDir(), "package")
	cmd, cancel := serverless(t, root, "http://127.0.0.1:9", append([]string{"package", "--stage", stage, "--package", pkg}, extra...)...)
	defer cancel()
	start := time.Now()
	out, err := cmd.CombinedOutput()
	elapsed := time.Since(start)
	if err != nil {
		t.Fatalf("serverless package failed after %v: %v\n%s", elapsed.Round(time.Millisecond), err, out)
	}
	t.Logf("serverless package --stage %s took %v", stage, elapsed.Round(time.Millisecond))

	// The resolved configuration: the Region is the default one when --region is not given.
	var state struct {
		Service struct {
			Provider struct{ Region, Stage string }
		}
	}
	if b, err := os.ReadFile(filepath.Join(pkg, "serverless-state.json")); err != nil {
		t.Errorf("%v\nserverless output:\n%s", err, out)
	} else if err := json.Unmarshal(b, &state); err != nil {
		t.Errorf("serverless-state.json: %v", err)
	} else if p := state.Service.Provider; p.Region != "us-east-1" || p.Stage != stage {
		t.Errorf("resolved provider region %q, stage %q; want us-east-1 (the default) and %s", p.Region, p.Stage, stage)
	}

	raw, err := os.ReadFile(filepath.Join(pkg, "cloudformation-template-update-stack.json"))
	if err != nil {
		t.Fatalf("%v\nserverless output:\n%s", err, out)
	}
	return raw
}

// serverless returns the osls command `npx serverless args...` runs, in dir (the service's
// directory), with a stand-in artifact as ARTIFACT, and an environment in which nothing can reach
// AWS: a fresh HOME, dummy credentials and no AWS configuration files, the instance metadata
// service off, and every AWS endpoint at awsEndpoint (AWS_ENDPOINT_URL, which osls's AWS SDK
// honours for every service). Its stdin is /dev/null: it never waits for a prompt. cancel ends it
// after 3 minutes at the latest.
func serverless(t *testing.T, dir, awsEndpoint string, args ...string) (cmd *exec.Cmd, cancel func()) {
	return serverlessEnv(t, dir, awsEndpoint, deployEnv, args...)
}

// deployEnv is the deploy's own configuration, as a user gives it to `make deploy`: the issuer it
// trusts, and the origins allowed to call the HTTP API.
var deployEnv = []string{
	"AUTH_MODE=jwt", "AUTH_JWKS_URL=https://idp.example/.well-known/jwks.json", "AUTH_ISSUER=https://idp.example/",
	"AUTH_AUDIENCE=lambdaws", "CORS_ORIGINS=https://app.example, https://admin.example",
}

// serverlessEnv is serverless with the deploy configuration given as extra (NAME=value items).
func serverlessEnv(t *testing.T, dir, awsEndpoint string, extra []string, args ...string) (cmd *exec.Cmd, cancel func()) {
	t.Helper()
	root := devproc.Root(t)
	node, modules := testenv.Node(t, root, "osls")
	tmp := t.TempDir()
	artifact := filepath.Join(tmp, standInArtifact)
	writeStandInArtifact(t, artifact)
	home := filepath.Join(tmp, "home")
	if err := os.Mkdir(home, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	cmd = exec.CommandContext(ctx, node, append([]string{filepath.Join(modules, "osls", "bin", "serverless.js")}, args...)...)
	cmd.Dir = dir
	cmd.Stdin = nil // /dev/null
	// A clean environment, so that no developer's AWS profile or credentials are picked up.
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + home,
		"TMPDIR=" + tmp,
		"ARTIFACT=" + artifact,
		"SLS_TELEMETRY_DISABLED=1",
		"SLS_NOTIFICATIONS_MODE=off",
		"SLS_INTERACTIVE_SETUP_DISABLE=1",
		"AWS_ACCESS_KEY_ID=" + standInKey,
		"AWS_SECRET_ACCESS_KEY=stand-in",
		"AWS_CONFIG_FILE=" + filepath.Join(home, "no-aws-config"),
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(home, "no-aws-credentials"),
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_ENDPOINT_URL=" + awsEndpoint,
	}
	cmd.Env = append(cmd.Env, extra...)
	return cmd, cancel
}

// standInKey is the access key id of the dummy credentials.
const standInKey = "AKIDSTANDIN"

// writeStandInArtifact writes a zip holding an executable `bootstrap`. The template does not
// depend on the artifact's content, and cross-compiling the real one would only cost time.
func writeStandInArtifact(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	h := &zip.FileHeader{Name: "bootstrap", Method: zip.Deflate}
	h.SetMode(0o755)
	w, err := zw.CreateHeader(h)
	if err == nil {
		_, err = w.Write([]byte("#!/bin/sh\necho 'stand-in for the Go binary'\n"))
	}
	if err == nil {
		err = zw.Close()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
}

func decode(t *testing.T, raw []byte) map[string]any {
	t.Helper()
	var tpl map[string]any
	if err := json.Unmarshal(raw, &tpl); err != nil {
		t.Fatalf("the template is not JSON: %v", err)
	}
	return tpl
}

// ---------------------------------------------------------------------------------------------
// The checks. checkTemplate returns every problem it finds rather than stopping at the first.

// checker walks a template and collects problems.
type checker struct {
	res        map[string]any // Resources
	playground string         // the PLAYGROUND the function must have: "false" unless enabled
	problems   []string
}

func (c *checker) errorf(format string, args ...any) {
	c.problems = append(c.problems, fmt.Sprintf(format, args...))
}

// ofType returns the logical ids of the resources of a type, sorted.
func (c *checker) ofType(typ string) []string {
	var ids []string
	for id, r := range c.res {
		if str(obj(r)["Type"]) == typ {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

// props returns the Properties of a resource, or nil.
func (c *checker) props(id string) map[string]any { return obj(obj(c.res[id])["Properties"]) }

// want reports a property whose value differs from the expected one.
func (c *checker) want(what string, got, want any) {
	if fmt.Sprint(got) != fmt.Sprint(want) {
		c.errorf("%s = %s, want %v", what, show(got), want)
	}
}

// ids of the resources the checks find first and the later checks refer to.
type stackIDs struct {
	function, role        string
	registry, data, queue string
	chunks, chunksDLQ     string
	websocketAPI, httpAPI string
	timeout               float64 // the function's
	// The external events' queue, its dead-letter queue, the asynchronous invokes' failure
	// queue and the SNS topic.
	events, eventsDLQ, asyncFailures, topic string
}

func checkTemplate(tpl map[string]any) []string { return checkTemplateWith(tpl, "false") }

// checkTemplateWith is checkTemplate for a deployment whose PLAYGROUND is playground.
func checkTemplateWith(tpl map[string]any, playground string) []string {
	c := &checker{res: obj(tpl["Resources"]), playground: playground}
	if c.res == nil {
		return []string{"the template has no Resources"}
	}
	var ids stackIDs
	c.checkTables(&ids)
	c.checkQueue(&ids)
	c.checkFunction(&ids)
	c.checkWebSocketAPI(&ids)
	c.checkHTTPAPI(&ids)
	c.checkStream(&ids)
	c.checkChunks(&ids)
	c.checkEventsQueue(&ids)
	c.checkSchedule(&ids)
	c.checkEventRule(&ids)
	c.checkTopic(&ids)
	c.checkAsyncFailures(&ids)
	c.checkSecurity(&ids)
	c.checkPermissions(&ids)
	c.checkIAM(&ids)
	c.checkAlarms(&ids, obj(tpl["Conditions"]))
	c.checkOutputs(obj(tpl["Outputs"]))
	return c.problems
}

// checkTables: the registry and data tables, whose design the Go code is written to.
func (c *checker) checkTables(ids *stackIDs) {
	for _, id := range c.ofType("AWS::DynamoDB::Table") {
		name := str(c.props(id)["TableName"])
		switch {
		case strings.HasSuffix(name, "-"+stage+"-registry"):
			ids.registry = id
		case strings.HasSuffix(name, "-"+stage+"-data"):
			ids.data = id
		default:
			c.errorf("table %s has TableName %q: want <service>-%s-registry or <service>-%s-data", id, name, stage, stage)
		}
	}
	if ids.registry == "" {
		c.errorf("no AWS::DynamoDB::Table named <service>-%s-registry", stage)
	}
	if ids.data == "" {
		c.errorf("no AWS::DynamoDB::Table named <service>-%s-data", stage)
	}
	for _, id := range []string{ids.registry, ids.data} {
		if id == "" {
			continue
		}
		p := c.props(id)
		c.want(id+" BillingMode", p["BillingMode"], "PAY_PER_REQUEST")
		c.want(id+" KeySchema", keyList(p["KeySchema"], "KeyType"), "[pk:HASH sk:RANGE]")
		c.want(id+" AttributeDefinitions", keyList(p["AttributeDefinitions"], "AttributeType"), "[pk:S sk:S]")
		ttl := obj(p["TimeToLiveSpecification"])
		c.want(id+" TimeToLiveSpecification.AttributeName", ttl["AttributeName"], "ttl")
		c.want(id+" TimeToLiveSpecification.Enabled", ttl["Enabled"], true)
	}
	if id := ids.registry; id != "" {
		p := c.props(id)
		if s, ok := p["StreamSpecification"]; ok {
			c.errorf("registry table %s has a StreamSpecification (%s): nothing consumes registry changes", id, show(s))
		}
		for _, k := range []string{"GlobalSecondaryIndexes", "LocalSecondaryIndexes"} {
			if v, ok := p[k]; ok {
				c.errorf("registry table %s has %s (%s): its design has no indexes", id, k, show(v))
			}
		}
	}
	if id := ids.data; id != "" {
		p := c.props(id)
		c.want(id+" StreamSpecification.StreamViewType", obj(p["StreamSpecification"])["StreamViewType"], "NEW_AND_OLD_IMAGES")
		c.want(id+" PointInTimeRecoverySpecification.PointInTimeRecoveryEnabled",
			obj(p["PointInTimeRecoverySpecification"])["PointInTimeRecoveryEnabled"], true)
	}
}

// keyList renders [{AttributeName: pk, <field>: X}, ...] as "[pk:X ...]".
func keyList(v any, field string) string {
	var parts []string
	for _, e := range list(v) {
		parts = append(parts, str(obj(e)["AttributeName"])+":"+str(obj(e)[field]))
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// checkQueue: the queues, told apart by name: the stream's on-failure destination, the external
// events' queue and its dead-letter queue, the asynchronous invokes' on-failure destination, the
// chunk queue and its dead-letter queue.
func (c *checker) checkQueue(ids *stackIDs) {
	byName := map[string]*string{"-stream-failures": &ids.queue, "-events": &ids.events, "-events-dlq": &ids.eventsDLQ,
		"-async-failures": &ids.asyncFailures, "-chunks": &ids.chunks, "-chunks-dlq": &ids.chunksDLQ}
	for _, id := range c.ofType("AWS::SQS::Queue") {
		p := c.props(id)
		name := str(p["QueueName"])
		_, suffix, ok := strings.Cut(name, "-"+stage)
		if !ok || byName[suffix] == nil {
			c.errorf("queue %s QueueName %q: want <service>-%s- and one of -stream-failures, -events, -events-dlq, -async-failures, -chunks, -chunks-dlq", id, name, stage)
			continue
		}
		*byName[suffix] = id
		// The SQS default is 4 days; failures deserve longer to be looked at. (The chunk
		// queue's continuations live as long as their progress rows, a day.)
		if r, ok := num(p["MessageRetentionPeriod"]); suffix != "-events" && suffix != "-chunks" && (!ok || r < 4*24*3600) {
			c.errorf("queue %s MessageRetentionPeriod = %s, want at least the 4-day default (e.g. 1209600, 14 days)", id, show(p["MessageRetentionPeriod"]))
		}
	}
	for suffix, id := range byName {
		if *id == "" {
			c.errorf("no AWS::SQS::Queue named <service>-%s%s", stage, suffix)
		}
	}
	if id := ids.chunks; id != "" {
		rp := obj(c.props(id)["RedrivePolicy"])
		if ids.chunksDLQ == "" || render(rp["deadLetterTargetArn"]) != "${"+ids.chunksDLQ+".Arn}" {
			c.errorf("chunk queue %s RedrivePolicy = %s, want failing continuations sent to the chunk dead-letter queue", id, show(rp))
		}
		if n, ok := num(rp["maxReceiveCount"]); !ok || n < 1 || n > 10 {
			c.errorf("chunk queue %s RedrivePolicy.maxReceiveCount = %s, want 1..10", id, show(rp["maxReceiveCount"]))
		}
	}
	if ids.events == "" {
		return
	}
	p := c.props(ids.events)
	redrive := obj(p["RedrivePolicy"])
	if dlq := render(redrive["deadLetterTargetArn"]); ids.eventsDLQ == "" || dlq != "${"+ids.eventsDLQ+".Arn}" {
		c.errorf("events queue %s RedrivePolicy.deadLetterTargetArn = %q, want its dead-letter queue's Arn (a malformed message must end there)", ids.events, dlq)
	}
	if n, ok := num(redrive["maxReceiveCount"]); !ok || n < 1 || n > 10 {
		c.errorf("events queue %s RedrivePolicy.maxReceiveCount = %s, want 1..10 (absent: redelivered until it expires)", ids.events, show(redrive["maxReceiveCount"]))
	}
	if ids.eventsDLQ != "" {
		kept, _ := num(c.props(ids.eventsDLQ)["MessageRetentionPeriod"])
		if r, ok := num(p["MessageRetentionPeriod"]); ok && kept <= r {
			c.errorf("the dead-letter queue keeps messages %vs, not longer than the events queue (%vs): a moved message keeps its first enqueue time", kept, r)
		}
	}
}

// checkFunction: the one Lambda function, its runtime and its environment.
func (c *checker) checkFunction(ids *stackIDs) {
	fns := c.ofType("AWS::Lambda::Function")
	if len(fns) != 1 {
		c.errorf("want exactly one AWS::Lambda::Function, got %v", fns)
		return
	}
	ids.function = fns[0]
	p := c.props(ids.function)
	c.want("function Runtime", p["Runtime"], "provided.al2023")
	c.want("function Architectures", p["Architectures"], "[arm64]")
	c.want("function Handler", p["Handler"], "bootstrap")
	if m, ok := num(p["MemorySize"]); !ok || m < 512 || m > 10240 {
		c.errorf("function MemorySize = %s, want 512..10240", show(p["MemorySize"]))
	}
	// API Gateway gives up on a WebSocket integration after 29 s (see serverless.yml).
	if s, ok := num(p["Timeout"]); !ok || s < 10 || s > 29 {
		c.errorf("function Timeout = %s, want 10..29 s", show(p["Timeout"]))
	} else {
		ids.timeout = s
	}
	if key := str(obj(p["Code"])["S3Key"]); !strings.HasSuffix(key, "/"+standInArtifact) {
		c.errorf("function Code.S3Key = %q: the artifact is not the zip ARTIFACT names (%s)", key, standInArtifact)
	}

	env := obj(obj(p["Environment"])["Variables"])
	if ids.registry != "" {
		c.want("REGISTRY_TABLE", render(env["REGISTRY_TABLE"]), "${"+ids.registry+"}")
	}
	if ids.data != "" {
		c.want("DATA_TABLE", render(env["DATA_TABLE"]), "${"+ids.data+"}")
	}
	c.want("WEBSOCKET_ENDPOINT", canon(render(env["WEBSOCKET_ENDPOINT"])),
		"https://${WebsocketsApi}.execute-api.${AWS::Region}.amazonaws.com/"+stage)
	c.want("LOG_LEVEL", env["LOG_LEVEL"], "info")
	if ids.chunks != "" {
		c.want("CHUNK_QUEUE_URL", render(env["CHUNK_QUEUE_URL"]), "${"+ids.chunks+"}")
	}
	c.want("PLAYGROUND", env["PLAYGROUND"], c.playground)
	c.want("AUTH_MODE", env["AUTH_MODE"], "jwt")
	c.want("AUTH_JWKS_URL", env["AUTH_JWKS_URL"], "https://idp.example/.well-known/jwks.json")
	c.want("CORS_ORIGINS", env["CORS_ORIGINS"], "https://app.example, https://admin.example")

	role := list(obj(p["Role"])["Fn::GetAtt"])
	if len(role) != 2 || str(role[1]) != "Arn" || str(obj(c.res[str(role[0])])["Type"]) != "AWS::IAM::Role" {
		c.errorf("function Role = %s: want Fn::GetAtt [<a role of this template>, Arn], so its grants can be checked", show(p["Role"]))
		return
	}
	ids.role = str(role[0])
}

// checkWebSocketAPI: $connect, $disconnect and $default, all to the function, with route
// responses on $connect (the subprotocol header) and $default (two-way replies).
func (c *checker) checkWebSocketAPI(ids *stackIDs) {
	const api = "WebsocketsApi" // the framework's logical id, which the other references use
	if str(obj(c.res[api])["Type"]) != "AWS::ApiGatewayV2::Api" || c.props(api)["ProtocolType"] != "WEBSOCKET" {
		c.errorf("no WebSocket API with the logical id %s", api)
		return
	}
	ids.websocketAPI = api
	routes := c.routesOf(api)
	var keys []string
	for k := range routes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	c.want("WebSocket route keys", keys, "[$connect $default $disconnect]")
	for key, id := range routes {
		c.checkRouteTarget(ids, "WebSocket route "+key, id)
	}

	responses := map[string]string{} // route id → RouteResponseKey
	for _, id := range c.ofType("AWS::ApiGatewayV2::RouteResponse") {
		p := c.props(id)
		responses[str(obj(p["RouteId"])["Ref"])] = str(p["RouteResponseKey"])
	}
	for _, key := range []string{"$connect", "$default"} {
		id, ok := routes[key]
		if !ok {
			continue
		}
		c.want("WebSocket route "+key+" RouteResponseSelectionExpression", c.props(id)["RouteResponseSelectionExpression"], "$default")
		if got, ok := responses[id]; !ok || got != "$default" {
			c.errorf("WebSocket route %s has no AWS::ApiGatewayV2::RouteResponse with RouteResponseKey $default", key)
		}
	}

	// The management endpoint and the ManageConnections grant name this stage.
	var stages []string
	for _, id := range c.ofType("AWS::ApiGatewayV2::Stage") {
		if render(c.props(id)["ApiId"]) == "${"+api+"}" {
			stages = append(stages, str(c.props(id)["StageName"]))
		}
	}
	c.want("WebSocket API stages", stages, "["+stage+"]")
}

// routesOf returns the routes of an API by route key.
func (c *checker) routesOf(api string) map[string]string {
	routes := map[string]string{}
	for _, id := range c.ofType("AWS::ApiGatewayV2::Route") {
		p := c.props(id)
		if render(p["ApiId"]) == "${"+api+"}" {
			routes[str(p["RouteKey"])] = id
		}
	}
	return routes
}

// checkRouteTarget checks that a route proxies to the function and returns its integration.
func (c *checker) checkRouteTarget(ids *stackIDs, what, route string) map[string]any {
	target := render(c.props(route)["Target"])
	integ, ok := strings.CutPrefix(target, "integrations/${")
	integ = strings.TrimSuffix(integ, "}")
	p := c.props(integ)
	if !ok || str(obj(c.res[integ])["Type"]) != "AWS::ApiGatewayV2::Integration" {
		c.errorf("%s Target = %q, want integrations/<an integration>", what, target)
		return nil
	}
	c.want(what+" integration type", p["IntegrationType"], "AWS_PROXY")
	if ids.function != "" && !strings.Contains(render(p["IntegrationUri"]), "${"+ids.function+".Arn}") {
		c.errorf("%s integration does not invoke %s: IntegrationUri = %s", what, ids.function, render(p["IntegrationUri"]))
	}
	return p
}

// checkHTTPAPI: POST and GET /graphql, payload format 2.0 (the router recognises
// requestContext.http), on the $default stage (the HTTP URL has no stage prefix).
func (c *checker) checkHTTPAPI(ids *stackIDs) {
	const api = "HttpApi"
	if str(obj(c.res[api])["Type"]) != "AWS::ApiGatewayV2::Api" || c.props(api)["ProtocolType"] != "HTTP" {
		c.errorf("no HTTP API with the logical id %s", api)
		return
	}
	ids.httpAPI = api
	routes := c.routesOf(api)
	for _, key := range []string{"POST /graphql", "GET /graphql"} {
		id, ok := routes[key]
		if !ok {
			c.errorf("the HTTP API has no route %q (routes: %v)", key, routes)
			continue
		}
		if p := c.checkRouteTarget(ids, "HTTP route "+key, id); p != nil {
			c.want("HTTP route "+key+" PayloadFormatVersion", p["PayloadFormatVersion"], "2.0")
		}
	}
	var stages []string
	for _, id := range c.ofType("AWS::ApiGatewayV2::Stage") {
		if render(c.props(id)["ApiId"]) == "${"+api+"}" {
			stages = append(stages, str(c.props(id)["StageName"]))
		}
	}
	c.want("HTTP API stages", stages, "[$default]")
}

// checkStream: the data table's stream into the function, with every bound that keeps a failing
// record from blocking its shard.
func (c *checker) checkStream(ids *stackIDs) {
	esms := c.mappings()
	if len(esms) != 3 {
		c.errorf("want exactly three AWS::Lambda::EventSourceMapping (the data stream, the events queue, the chunk queue), got %v", esms)
	}
	id := esms["stream"]
	if id == "" {
		c.errorf("no event source mapping reads the data table's stream")
		return
	}
	p := c.props(id)
	if ids.data != "" {
		c.want("event source mapping EventSourceArn", render(p["EventSourceArn"]), "${"+ids.data+".StreamArn}")
	}
	if ids.function != "" {
		c.want("event source mapping FunctionName", render(p["FunctionName"]), "${"+ids.function+".Arn}")
	}
	// Order per partition key is what the fan-out relies on (serverless.yml says why).
	if n, ok := num(p["ParallelizationFactor"]); !ok || n < 1 || n > 10 {
		c.errorf("event source mapping ParallelizationFactor = %s, want it set, 1..10, with its ordering argument", show(p["ParallelizationFactor"]))
	}
	c.want("event source mapping BatchSize", p["BatchSize"], 100)
	c.want("event source mapping StartingPosition", p["StartingPosition"], "LATEST")
	if e, ok := p["Enabled"]; ok {
		c.want("event source mapping Enabled", e, true)
	}
	c.want("event source mapping FunctionResponseTypes", p["FunctionResponseTypes"], "[ReportBatchItemFailures]")
	c.want("event source mapping BisectBatchOnFunctionError", p["BisectBatchOnFunctionError"], true)
	// Both default to -1 (infinite): a failing batch would then block its shard for the
	// stream's whole 24 h retention.
	if n, ok := num(p["MaximumRetryAttempts"]); !ok || n < 0 || n > 10 {
		c.errorf("event source mapping MaximumRetryAttempts = %s, want a bound in 0..10 (-1 or absent retries forever)", show(p["MaximumRetryAttempts"]))
	}
	if n, ok := num(p["MaximumRecordAgeInSeconds"]); !ok || n < 60 || n > 6*3600 {
		c.errorf("event source mapping MaximumRecordAgeInSeconds = %s, want a bound in 60..21600 (-1 or absent keeps records for the 24 h retention)", show(p["MaximumRecordAgeInSeconds"]))
	}
	dest := render(obj(obj(p["DestinationConfig"])["OnFailure"])["Destination"])
	if ids.queue == "" || dest != "${"+ids.queue+".Arn}" {
		c.errorf("event source mapping DestinationConfig.OnFailure.Destination = %q, want the failure queue's Arn", dest)
	}
}

// checkChunks: the chunk queue into the function: partial batch responses, bounded batches and
// concurrency, and a visibility timeout of at least 6 times the function's timeout.
func (c *checker) checkChunks(ids *stackIDs) {
	if ids.chunks == "" {
		return
	}
	if v, ok := num(c.props(ids.chunks)["VisibilityTimeout"]); !ok || ids.timeout == 0 || v < 6*ids.timeout {
		c.errorf("chunk queue %s VisibilityTimeout = %s, want at least 6 × the function's timeout (%v s)", ids.chunks, show(c.props(ids.chunks)["VisibilityTimeout"]), ids.timeout)
	}
	id := c.mappings()["chunks"]
	if id == "" {
		c.errorf("no event source mapping consumes the chunk queue %s", ids.chunks)
		return
	}
	p := c.props(id)
	if ids.function != "" {
		c.want("chunk queue mapping FunctionName", render(p["FunctionName"]), "${"+ids.function+".Arn}")
	}
	c.want("chunk queue mapping FunctionResponseTypes", p["FunctionResponseTypes"], "[ReportBatchItemFailures]")
	if n, ok := num(p["BatchSize"]); !ok || n < 1 || n > 10 {
		c.errorf("chunk queue mapping BatchSize = %s, want 1..10", show(p["BatchSize"]))
	}
	if n, ok := num(obj(p["ScalingConfig"])["MaximumConcurrency"]); !ok || n < 2 || n > 1000 {
		c.errorf("chunk queue mapping ScalingConfig.MaximumConcurrency = %s, want 2..1000 (parallel chunk consumers, bounded)", show(p["ScalingConfig"]))
	}
	if e, ok := p["Enabled"]; ok {
		c.want("chunk queue mapping Enabled", e, true)
	}
}

// checkAlarms: an alarm on each failure and dead-letter queue's depth (the stream's failures, the
// chunk and events dead-letter queues, the asynchronous invokes' failures), the chunk queue's
// age, the stream's IteratorAge and the function's errors and throttles, each notifying the
// alarmTopicArn parameter's topic when there is one.
func (c *checker) checkAlarms(ids *stackIDs, conditions map[string]any) {
	topic, ok := alarmCondition(conditions)
	if !ok {
		c.errorf("no condition AlarmNotifications: !Not [!Equals [<alarmTopicArn>, '']] (Conditions = %s)", show(conditions))
	}
	type want struct {
		namespace, metric, dimension, target string
	}
	queueName := func(id string) string { return "${" + id + ".QueueName}" }
	wants := map[string]want{
		"the stream failure queue's depth":     {"AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", queueName(ids.queue)},
		"the chunk dead-letter queue's depth":  {"AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", queueName(ids.chunksDLQ)},
		"the events dead-letter queue's depth": {"AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", queueName(ids.eventsDLQ)},
		"the async failure queue's depth":      {"AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", queueName(ids.asyncFailures)},
		"the chunk queue's oldest message":     {"AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", queueName(ids.chunks)},
		"the stream's IteratorAge":             {"AWS/Lambda", "IteratorAge", "FunctionName", "${" + ids.function + "}"},
		"the function's Errors":                {"AWS/Lambda", "Errors", "FunctionName", "${" + ids.function + "}"},
		"the function's Throttles":             {"AWS/Lambda", "Throttles", "FunctionName", "${" + ids.function + "}"},
	}
	found := map[string]bool{}
	for _, id := range c.ofType("AWS::CloudWatch::Alarm") {
		p := c.props(id)
		dims := list(p["Dimensions"])
		var dim, target string
		if len(dims) == 1 {
			dim, target = str(obj(dims[0])["Name"]), render(obj(dims[0])["Value"])
		}
		for what, w := range wants {
			if p["Namespace"] == w.namespace && p["MetricName"] == w.metric && dim == w.dimension && target == w.target {
				found[what] = true
			}
		}
		if _, ok := num(p["Threshold"]); !ok || p["ComparisonOperator"] != "GreaterThanThreshold" || p["TreatMissingData"] != "notBreaching" {
			c.errorf("alarm %s: Threshold %s, ComparisonOperator %s, TreatMissingData %s: want GreaterThanThreshold a threshold, missing data not breaching",
				id, show(p["Threshold"]), show(p["ComparisonOperator"]), show(p["TreatMissingData"]))
		}
		for _, k := range []string{"AlarmActions", "OKActions"} {
			if got := alarmActions(p[k]); !ok || got != topic {
				c.errorf("alarm %s %s = %s: want !If [AlarmNotifications, [<alarmTopicArn>], !Ref AWS::NoValue]", id, k, show(p[k]))
			}
		}
	}
	for what := range wants {
		if !found[what] {
			c.errorf("no AWS::CloudWatch::Alarm on %s", what)
		}
	}
}

// alarmCondition returns the value AlarmNotifications compares with "".
func alarmCondition(conditions map[string]any) (string, bool) {
	not := list(obj(conditions["AlarmNotifications"])["Fn::Not"])
	if len(not) != 1 {
		return "", false
	}
	eq := list(obj(not[0])["Fn::Equals"])
	if len(eq) != 2 || eq[1] != "" {
		return "", false
	}
	v, ok := eq[0].(string)
	return v, ok
}

// alarmActions returns the topic of Fn::If [AlarmNotifications, [topic], NoValue], or "<bad>".
func alarmActions(v any) string {
	f := list(obj(v)["Fn::If"])
	if len(f) != 3 || f[0] != "AlarmNotifications" || render(f[2]) != "${AWS::NoValue}" || len(list(f[1])) != 1 {
		return "<bad>"
	}
	return str(list(f[1])[0])
}

// alarmTopic is the topic the template's alarms notify, "" for none.
func alarmTopic(tpl map[string]any) string {
	topic, ok := alarmCondition(obj(tpl["Conditions"]))
	if !ok {
		return "<no condition>"
	}
	return topic
}

// mappings returns the event source mappings by what they read: "stream" (a DynamoDB stream),
// "events" and "chunks" (the SQS queues named <service>-<stage>-events and -chunks), or their
// logical id.
func (c *checker) mappings() map[string]string {
	out := map[string]string{}
	for _, id := range c.ofType("AWS::Lambda::EventSourceMapping") {
		src := render(c.props(id)["EventSourceArn"])
		queue := strings.TrimSuffix(strings.TrimPrefix(src, "${"), ".Arn}")
		_, suffix, _ := strings.Cut(str(c.props(queue)["QueueName"]), "-"+stage)
		switch {
		case strings.HasSuffix(src, ".StreamArn}"):
			out["stream"] = id
		case strings.HasSuffix(src, ".Arn}") && str(obj(c.res[queue])["Type"]) == "AWS::SQS::Queue" && suffix == "-events":
			out["events"] = id
		case strings.HasSuffix(src, ".Arn}") && str(obj(c.res[queue])["Type"]) == "AWS::SQS::Queue" && suffix == "-chunks":
			out["chunks"] = id
		default:
			out[id] = id
		}
	}
	return out
}

// checkEventsQueue: the events queue into the function, with partial batch responses, and a
// visibility timeout that outlasts the function's retries.
func (c *checker) checkEventsQueue(ids *stackIDs) {
	id := c.mappings()["events"]
	if id == "" {
		c.errorf("no event source mapping reads the events queue")
		return
	}
	p := c.props(id)
	if ids.events != "" {
		c.want("events queue mapping EventSourceArn", render(p["EventSourceArn"]), "${"+ids.events+".Arn}")
	}
	if ids.function != "" {
		c.want("events queue mapping FunctionName", render(p["FunctionName"]), "${"+ids.function+".Arn}")
	}
	c.want("events queue mapping FunctionResponseTypes", p["FunctionResponseTypes"], "[ReportBatchItemFailures]")
	if n, ok := num(p["BatchSize"]); !ok || n < 1 || n > 10 {
		c.errorf("events queue mapping BatchSize = %s, want 1..10", show(p["BatchSize"]))
	}
	if e, ok := p["Enabled"]; ok {
		c.want("events queue mapping Enabled", e, true)
	}
	if ids.events == "" || ids.function == "" {
		return
	}
	timeout, _ := num(c.props(ids.function)["Timeout"])
	if v, ok := num(c.props(ids.events)["VisibilityTimeout"]); !ok || v < 6*timeout {
		c.errorf("events queue VisibilityTimeout = %s, want at least 6 × the function's timeout (%v s)", show(c.props(ids.events)["VisibilityTimeout"]), 6*timeout)
	}
}

// rules returns the EventBridge rules: the sweeper's schedule, the external events' rule
// (an event pattern), and any other by logical id.
func (c *checker) rules() (schedule, external string, others []string) {
	for _, id := range c.ofType("AWS::Events::Rule") {
		p := c.props(id)
		switch {
		case p["ScheduleExpression"] != nil && schedule == "":
			schedule = id
		case p["EventPattern"] != nil && external == "":
			external = id
		default:
			others = append(others, id)
		}
	}
	return schedule, external, others
}

// ruleArns renders the ARNs by which the template may name a rule: ${Rule.Arn}, or the ARN built of its
// name (the framework's permission for a named eventBridge rule).
func (c *checker) ruleArns(id string) []string {
	arns := []string{"${" + id + ".Arn}"}
	if name := str(c.props(id)["Name"]); name != "" {
		arns = append(arns, "arn:aws:events:${AWS::Region}:${AWS::AccountId}:rule/"+name)
	}
	return arns
}

// checkSchedule: the sweeper's rule invokes the function every minute; EventBridge may invoke the
// function only from this stack's rules.
func (c *checker) checkSchedule(ids *stackIDs) {
	schedule, external, others := c.rules()
	if schedule == "" || len(others) > 0 {
		c.errorf("want the sweeper's schedule and the external events' rule as AWS::Events::Rule, got schedule %q, events %q and %v", schedule, external, others)
	}
	if schedule == "" {
		return
	}
	p := c.props(schedule)
	c.want("schedule ScheduleExpression", p["ScheduleExpression"], "rate(1 minute)")
	if st, ok := p["State"]; ok && st != "ENABLED" {
		c.errorf("the schedule's State = %v, want ENABLED", st)
	}
	targets := list(p["Targets"])
	if len(targets) != 1 || ids.function == "" || render(obj(targets[0])["Arn"]) != "${"+ids.function+".Arn}" {
		c.errorf("the schedule's Targets = %s, want the function %s", show(p["Targets"]), ids.function)
	}
	allowed := map[string]bool{}
	for _, id := range c.ofType("AWS::Lambda::Permission") {
		pp := c.props(id)
		if pp["Principal"] != "events.amazonaws.com" {
			continue
		}
		src, ok := canon(render(pp["SourceArn"])), false
		for _, rule := range []string{schedule, external} {
			if rule != "" && slices.Contains(c.ruleArns(rule), src) {
				allowed[rule], ok = true, true
			}
		}
		if !ok {
			c.errorf("Lambda permission %s lets EventBridge invoke from %s, want only this stack's rules (%s, %s)", id, src, schedule, external)
		}
	}
	for _, rule := range []string{schedule, external} {
		if rule != "" && !allowed[rule] {
			c.errorf("no Lambda permission lets the rule %s invoke the function", rule)
		}
	}
}

// checkEventRule: the external events' rule (the only one besides the schedule: it carries the
// invalidations too) targets the function on the default bus, for exactly
// the event types the schema subscribes to and lambdaws.invalidate.
func (c *checker) checkEventRule(ids *stackIDs) {
	_, external, _ := c.rules()
	if external == "" {
		c.errorf("no AWS::Events::Rule with an EventPattern: external events cannot reach the function")
		return
	}
	p := c.props(external)
	if bus := p["EventBusName"]; bus != nil && bus != "default" {
		c.errorf("the events rule's EventBusName = %s, want the default bus", show(bus))
	}
	if st, ok := p["State"]; ok && st != "ENABLED" {
		c.errorf("the events rule's State = %v, want ENABLED", st)
	}
	pattern := obj(p["EventPattern"])
	got := strs(pattern["detail-type"])
	sort.Strings(got)
	c.want("the events rule's EventPattern detail-type", got, schemaEventTypes)
	for k := range pattern {
		if k != "detail-type" && k != "source" {
			c.errorf("the events rule's EventPattern matches %s too: %s", k, show(pattern[k]))
		}
	}
	targets := list(p["Targets"])
	if len(targets) != 1 || ids.function == "" || render(obj(targets[0])["Arn"]) != "${"+ids.function+".Arn}" {
		c.errorf("the events rule's Targets = %s, want the function %s", show(p["Targets"]), ids.function)
	}
}

// checkTopic: the events topic, subscribed by the function, which only it may invoke it from.
func (c *checker) checkTopic(ids *stackIDs) {
	topics := c.ofType("AWS::SNS::Topic")
	if len(topics) != 1 {
		c.errorf("want one AWS::SNS::Topic (the events topic), got %v", topics)
		return
	}
	ids.topic = topics[0]
	var subscribed bool
	for _, id := range c.ofType("AWS::SNS::Subscription") {
		p := c.props(id)
		if render(p["TopicArn"]) == "${"+ids.topic+"}" && p["Protocol"] == "lambda" && ids.function != "" &&
			render(p["Endpoint"]) == "${"+ids.function+".Arn}" {
			subscribed = true
		}
	}
	if !subscribed {
		c.errorf("the function does not subscribe to the events topic %s", ids.topic)
	}
	var allowed bool
	for _, id := range c.ofType("AWS::Lambda::Permission") {
		p := c.props(id)
		if p["Principal"] != "sns.amazonaws.com" {
			continue
		}
		if render(p["SourceArn"]) != "${"+ids.topic+"}" {
			c.errorf("Lambda permission %s lets SNS invoke from %s, want only the events topic", id, render(p["SourceArn"]))
		}
		allowed = true
	}
	if !allowed {
		c.errorf("no Lambda permission lets the events topic invoke the function")
	}
}

// checkAsyncFailures: asynchronous invokes (EventBridge, SNS) that fail every retry go to a queue.
func (c *checker) checkAsyncFailures(ids *stackIDs) {
	configs := c.ofType("AWS::Lambda::EventInvokeConfig")
	if len(configs) != 1 {
		c.errorf("want one AWS::Lambda::EventInvokeConfig (the asynchronous invokes' on-failure destination), got %v", configs)
		return
	}
	p := c.props(configs[0])
	if ids.function != "" {
		c.want("EventInvokeConfig FunctionName", render(p["FunctionName"]), "${"+ids.function+"}")
	}
	dest := render(obj(obj(p["DestinationConfig"])["OnFailure"])["Destination"])
	if ids.asyncFailures == "" || dest != "${"+ids.asyncFailures+".Arn}" {
		c.errorf("EventInvokeConfig DestinationConfig.OnFailure.Destination = %q, want the async failure queue's Arn", dest)
	}
	if n, ok := num(p["MaximumRetryAttempts"]); !ok || n < 1 {
		c.errorf("EventInvokeConfig MaximumRetryAttempts = %s, want 1 or 2 (a failed delivery deserves a retry)", show(p["MaximumRetryAttempts"]))
	}
}

// checkSecurity: the HTTP API's CORS configuration is the one internal/cors answers, for the
// origins of CORS_ORIGINS; both stages are throttled.
func (c *checker) checkSecurity(ids *stackIDs) {
	corsCfg := obj(c.props("HttpApi")["CorsConfiguration"])
	if corsCfg == nil {
		c.errorf("the HTTP API has no CorsConfiguration (CORS_ORIGINS is set)")
	} else {
		c.want("CorsConfiguration.AllowOrigins", corsCfg["AllowOrigins"], "[https://app.example https://admin.example]")
		c.want("CorsConfiguration.AllowMethods", sortedStrs(corsCfg["AllowMethods"]), sortedStrs(toAny(cors.AllowedMethods)))
		c.want("CorsConfiguration.AllowHeaders", sortedStrs(corsCfg["AllowHeaders"]), sortedStrs(toAny(cors.AllowedHeaders)))
		c.want("CorsConfiguration.MaxAge", corsCfg["MaxAge"], cors.MaxAge)
	}
	for _, stage := range []string{"HttpApiStage", "WebsocketsDeploymentStage"} {
		rs := obj(c.props(stage)["DefaultRouteSettings"])
		rate, okRate := num(rs["ThrottlingRateLimit"])
		burst, okBurst := num(rs["ThrottlingBurstLimit"])
		// API Gateway's account quota: 10,000 requests a second, burst 5,000.
		if !okRate || !okBurst || rate < 1 || rate > 10000 || burst < 1 || burst > 5000 {
			c.errorf("%s DefaultRouteSettings = %s: want ThrottlingRateLimit 1..10000 and ThrottlingBurstLimit 1..5000", stage, show(rs))
		}
	}
}

func toAny(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

func sortedStrs(v any) []string {
	out := strs(v)
	sort.Strings(out)
	return out
}

// checkPermissions: API Gateway may invoke the function only from this stack's two APIs.
func (c *checker) checkPermissions(ids *stackIDs) {
	found := map[string]bool{}
	for _, id := range c.ofType("AWS::Lambda::Permission") {
		p := c.props(id)
		src := canon(render(p["SourceArn"]))
		if p["Principal"] != "apigateway.amazonaws.com" {
			continue
		}
		ok := false
		for _, api := range []string{ids.websocketAPI, ids.httpAPI} {
			if api != "" && strings.HasPrefix(src, "arn:aws:execute-api:${AWS::Region}:${AWS::AccountId}:${"+api+"}/") {
				found[api], ok = true, true
			}
		}
		if !ok {
			c.errorf("Lambda permission %s lets API Gateway invoke from SourceArn %q: want one of this stack's APIs", id, src)
		}
	}
	for _, api := range []string{ids.websocketAPI, ids.httpAPI} {
		if api != "" && !found[api] {
			c.errorf("no Lambda permission lets %s invoke the function", api)
		}
	}
}

// checkIAM: every grant of the function's role, exactly.
func (c *checker) checkIAM(ids *stackIDs) {
	if ids.role == "" {
		c.errorf("the function's role was not found: its grants cannot be checked")
		return
	}
	rp := c.props(ids.role)
	if m := list(rp["ManagedPolicyArns"]); len(m) > 0 {
		c.errorf("role %s has ManagedPolicyArns %s: managed policies escape these checks; use statements", ids.role, show(m))
	}
	var statements []any
	for _, pol := range list(rp["Policies"]) {
		statements = append(statements, statementsOf(obj(pol)["PolicyDocument"])...)
	}
	for _, typ := range []string{"AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"} {
		for _, id := range c.ofType(typ) {
			for _, r := range list(c.props(id)["Roles"]) {
				if render(r) == "${"+ids.role+"}" {
					statements = append(statements, statementsOf(c.props(id)["PolicyDocument"])...)
				}
			}
		}
	}
	if len(statements) == 0 {
		c.errorf("role %s has no policy statements", ids.role)
		return
	}

	// resource → actions granted on it, per service.
	granted := map[string]map[string]bool{}
	manageConnections := 0
	for i, s := range statements {
		st := obj(s)
		what := fmt.Sprintf("role %s statement %d", ids.role, i)
		for _, k := range []string{"NotAction", "NotResource"} {
			if _, ok := st[k]; ok {
				c.errorf("%s uses %s: keep grants plain Allow/Action/Resource so they can be checked", what, k)
			}
		}
		if st["Effect"] != "Allow" {
			c.errorf("%s has Effect %s, want Allow", what, show(st["Effect"]))
		}
		actions := strs(st["Action"])
		resources := list(st["Resource"])
		if len(resources) == 0 {
			resources = []any{st["Resource"]}
		}
		for _, a := range actions {
			if strings.Contains(a, "*") {
				c.errorf("%s grants the wildcard action %q", what, a)
			}
			service, _, _ := strings.Cut(a, ":")
			switch service {
			case "logs", "dynamodb", "sqs", "execute-api":
			default:
				c.errorf("%s grants %q: the function needs no %s actions", what, a, service)
			}
			for _, r := range resources {
				res := canon(render(r))
				if res == "*" {
					c.errorf("%s grants %s on Resource \"*\"", what, a)
					continue
				}
				if granted[res] == nil {
					granted[res] = map[string]bool{}
				}
				granted[res][a] = true
				if a == "execute-api:ManageConnections" {
					manageConnections++
					want := "arn:aws:execute-api:${AWS::Region}:${AWS::AccountId}:${WebsocketsApi}/" + stage + "/*"
					if res != want {
						c.errorf("%s grants execute-api:ManageConnections on %q, want exactly %q (this API and stage)", what, res, want)
					}
				}
			}
		}
	}
	if manageConnections == 0 {
		c.errorf("role %s does not grant execute-api:ManageConnections: the fan-out cannot post", ids.role)
	}

	// Exact dynamodb and sqs grants per resource.
	want := map[string][]string{}
	if ids.registry != "" {
		want["${"+ids.registry+".Arn}"] = []string{"dynamodb:BatchGetItem", "dynamodb:BatchWriteItem", "dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:UpdateItem"}
	}
	if ids.data != "" {
		want["${"+ids.data+".Arn}"] = []string{"dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:UpdateItem"}
		want["${"+ids.data+".StreamArn}"] = []string{"dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator", "dynamodb:ListStreams"}
	}
	if ids.queue != "" {
		want["${"+ids.queue+".Arn}"] = []string{"sqs:SendMessage"}
	}
	if ids.chunks != "" {
		want["${"+ids.chunks+".Arn}"] = []string{"sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage", "sqs:SendMessage"}
	}
	if ids.asyncFailures != "" {
		want["${"+ids.asyncFailures+".Arn}"] = []string{"sqs:SendMessage"}
	}
	if ids.events != "" {
		want["${"+ids.events+".Arn}"] = []string{"sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"}
	}
	var resources []string
	for r := range granted {
		resources = append(resources, r)
	}
	sort.Strings(resources)
	for _, r := range resources {
		var got []string
		for a := range granted[r] {
			if strings.HasPrefix(a, "dynamodb:") || strings.HasPrefix(a, "sqs:") {
				got = append(got, a)
			}
		}
		sort.Strings(got)
		if len(got) > 0 && want[r] == nil {
			c.errorf("role %s grants %v on %s, which is none of the tables, the data stream, the events queue, the chunk queue or the failure queues", ids.role, got, r)
		}
		if want[r] != nil {
			c.want(fmt.Sprintf("role %s actions on %s", ids.role, r), got, want[r])
		}
	}
	for r, actions := range want {
		if granted[r] == nil {
			c.errorf("role %s grants nothing on %s, want %v", ids.role, r, actions)
		}
	}
}

// statementsOf returns the statements of a policy document (one object or a list).
func statementsOf(doc any) []any {
	s := obj(doc)["Statement"]
	if l := list(s); l != nil {
		return l
	}
	if s != nil {
		return []any{s}
	}
	return nil
}

// checkOutputs: the explicit URL outputs.
func (c *checker) checkOutputs(outputs map[string]any) {
	for name, want := range map[string]string{
		"GraphqlWebSocketUrl": "wss://${WebsocketsApi}.execute-api.${AWS::Region}.amazonaws.com/" + stage,
		"GraphqlHttpUrl":      "https://${HttpApi}.execute-api.${AWS::Region}.amazonaws.com/graphql",
	} {
		o, ok := outputs[name]
		if !ok {
			c.errorf("no output %s", name)
			continue
		}
		c.want("output "+name, canon(render(obj(o)["Value"])), want)
	}
}

// ---------------------------------------------------------------------------------------------
// Reading CloudFormation JSON.

func obj(v any) map[string]any { m, _ := v.(map[string]any); return m }
func list(v any) []any         { l, _ := v.([]any); return l }
func str(v any) string         { s, _ := v.(string); return s }

func num(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case string: // CloudFormation accepts numbers as strings
		f, err := strconv.ParseFloat(x, 64)
		return f, err == nil
	}
	return 0, false
}

// strs reads a string or a list of strings.
func strs(v any) []string {
	if s, ok := v.(string); ok {
		return []string{s}
	}
	var out []string
	for _, e := range list(v) {
		out = append(out, str(e))
	}
	return out
}

func show(v any) string {
	if v == nil {
		return "<absent>"
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// render writes a value built of strings, Ref, Fn::GetAtt, Fn::Sub (string form) and Fn::Join
// as one string in Fn::Sub syntax: {"Ref": "X"} is ${X}, {"Fn::GetAtt": ["X", "Arn"]} is
// ${X.Arn}. So the checks do not depend on which of the equivalent forms the YAML uses.
func render(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case float64, bool:
		return fmt.Sprint(x)
	case map[string]any:
		if len(x) != 1 {
			break
		}
		if r, ok := x["Ref"].(string); ok {
			return "${" + r + "}"
		}
		if g, ok := x["Fn::GetAtt"]; ok {
			if s, ok := g.(string); ok {
				return "${" + s + "}"
			}
			if l := list(g); len(l) == 2 {
				return "${" + str(l[0]) + "." + str(l[1]) + "}"
			}
		}
		if s, ok := x["Fn::Sub"].(string); ok {
			return s
		}
		if j := list(x["Fn::Join"]); len(j) == 2 {
			var parts []string
			for _, p := range list(j[1]) {
				parts = append(parts, render(p))
			}
			return strings.Join(parts, str(j[0]))
		}
	}
	return "<unrendered " + show(v) + ">"
}

// canon replaces the pseudo parameters that only vary by partition with their values in aws.
func canon(s string) string {
	return strings.NewReplacer("${AWS::Partition}", "aws", "${AWS::URLSuffix}", "amazonaws.com").Replace(s)
}

// ---------------------------------------------------------------------------------------------
// Mistakes the checks must catch, made on copies of the generated template.

type mutation struct {
	name  string
	want  string // a problem must mention this
	apply func(t *testing.T, tpl map[string]any)
}

// resourceProps returns the Properties of the only resource of a type, or of the one whose
// TableName ends with suffix.
func resourceProps(t *testing.T, tpl map[string]any, typ, suffix string) map[string]any {
	t.Helper()
	var found []map[string]any
	for _, r := range obj(tpl["Resources"]) {
		p := obj(obj(r)["Properties"])
		if str(obj(r)["Type"]) == typ && strings.HasSuffix(str(p["TableName"]), suffix) {
			found = append(found, p)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want one %s (suffix %q), found %d", typ, suffix, len(found))
	}
	return found[0]
}

// roleStatements returns the function role's first policy's statements, for editing.
func roleStatements(t *testing.T, tpl map[string]any) (doc map[string]any) {
	t.Helper()
	fn := resourceProps(t, tpl, "AWS::Lambda::Function", "")
	role := str(list(obj(fn["Role"])["Fn::GetAtt"])[0])
	pols := list(obj(obj(obj(tpl["Resources"])[role])["Properties"])["Policies"])
	if len(pols) == 0 {
		t.Fatalf("role %s has no inline policy", role)
	}
	return obj(obj(pols[0])["PolicyDocument"])
}

// streamMapping returns the Properties of the data stream's event source mapping.
func streamMapping(t *testing.T, tpl map[string]any) map[string]any {
	t.Helper()
	for _, r := range obj(tpl["Resources"]) {
		p := obj(obj(r)["Properties"])
		if str(obj(r)["Type"]) == "AWS::Lambda::EventSourceMapping" && strings.HasSuffix(render(p["EventSourceArn"]), ".StreamArn}") {
			return p
		}
	}
	t.Fatal("no event source mapping of a stream")
	return nil
}

// queueMapping returns the Properties of the event source mapping of the queue whose name ends
// with suffix.
func queueMapping(t *testing.T, tpl map[string]any, suffix string) map[string]any {
	t.Helper()
	res := obj(tpl["Resources"])
	for _, r := range res {
		p := obj(obj(r)["Properties"])
		queue := strings.TrimSuffix(strings.TrimPrefix(render(p["EventSourceArn"]), "${"), ".Arn}")
		if str(obj(r)["Type"]) == "AWS::Lambda::EventSourceMapping" && strings.HasSuffix(str(obj(obj(res[queue])["Properties"])["QueueName"]), suffix) {
			return p
		}
	}
	t.Fatalf("no event source mapping of the queue *%s", suffix)
	return nil
}

// queueProps returns the Properties of the queue whose name ends with suffix.
func queueProps(t *testing.T, tpl map[string]any, suffix string) map[string]any {
	t.Helper()
	for _, r := range obj(tpl["Resources"]) {
		p := obj(obj(r)["Properties"])
		if str(obj(r)["Type"]) == "AWS::SQS::Queue" && strings.HasSuffix(str(p["QueueName"]), suffix) {
			return p
		}
	}
	t.Fatalf("no queue named *%s", suffix)
	return nil
}

func routeProps(t *testing.T, tpl map[string]any, key string) (string, map[string]any) {
	t.Helper()
	for id, r := range obj(tpl["Resources"]) {
		p := obj(obj(r)["Properties"])
		if str(obj(r)["Type"]) == "AWS::ApiGatewayV2::Route" && p["RouteKey"] == key {
			return id, p
		}
	}
	t.Fatalf("no route %s", key)
	return "", nil
}

var mutations = []mutation{
	{"the sweeper's schedule is gone", "AWS::Events::Rule", func(t *testing.T, tpl map[string]any) {
		res := obj(tpl["Resources"])
		for id, r := range res {
			if obj(r)["Type"] == "AWS::Events::Rule" && obj(obj(r)["Properties"])["ScheduleExpression"] != nil {
				delete(res, id)
			}
		}
	}},
	{"bisectBatchOnFunctionError is removed", "BisectBatchOnFunctionError", func(t *testing.T, tpl map[string]any) {
		delete(streamMapping(t, tpl), "BisectBatchOnFunctionError")
	}},
	{"retries are unbounded", "MaximumRetryAttempts", func(t *testing.T, tpl map[string]any) {
		streamMapping(t, tpl)["MaximumRetryAttempts"] = -1.0
	}},
	{"record age is unbounded", "MaximumRecordAgeInSeconds", func(t *testing.T, tpl map[string]any) {
		delete(streamMapping(t, tpl), "MaximumRecordAgeInSeconds")
	}},
	{"partial batch responses are off", "FunctionResponseTypes", func(t *testing.T, tpl map[string]any) {
		delete(streamMapping(t, tpl), "FunctionResponseTypes")
	}},
	{"there is no on-failure destination", "OnFailure", func(t *testing.T, tpl map[string]any) {
		delete(streamMapping(t, tpl), "DestinationConfig")
	}},
	{"the stream has no parallelization factor", "ParallelizationFactor", func(t *testing.T, tpl map[string]any) {
		delete(streamMapping(t, tpl), "ParallelizationFactor")
	}},
	{"the chunk queue has no dead-letter queue", "RedrivePolicy", func(t *testing.T, tpl map[string]any) {
		delete(queueProps(t, tpl, "-chunks"), "RedrivePolicy")
	}},
	{"the chunk queue's visibility timeout is the function's timeout", "VisibilityTimeout", func(t *testing.T, tpl map[string]any) {
		queueProps(t, tpl, "-chunks")["VisibilityTimeout"] = 29.0
	}},
	{"the chunk queue mapping reports no partial failures", "chunk queue mapping FunctionResponseTypes", func(t *testing.T, tpl map[string]any) {
		delete(queueMapping(t, tpl, "-chunks"), "FunctionResponseTypes")
	}},
	{"the chunk queue mapping has unbounded concurrency", "MaximumConcurrency", func(t *testing.T, tpl map[string]any) {
		delete(queueMapping(t, tpl, "-chunks"), "ScalingConfig")
	}},
	{"the chunk queue has no consumer", "no event source mapping consumes the chunk queue", func(t *testing.T, tpl map[string]any) {
		res := obj(tpl["Resources"])
		p := queueMapping(t, tpl, "-chunks")
		for id, r := range res {
			if str(obj(r)["Type"]) == "AWS::Lambda::EventSourceMapping" && render(obj(obj(r)["Properties"])["EventSourceArn"]) == render(p["EventSourceArn"]) {
				delete(res, id)
			}
		}
	}},
	{"CHUNK_QUEUE_URL is missing", "CHUNK_QUEUE_URL", func(t *testing.T, tpl map[string]any) {
		delete(obj(obj(resourceProps(t, tpl, "AWS::Lambda::Function", "")["Environment"])["Variables"]), "CHUNK_QUEUE_URL")
	}},
	{"the function cannot receive from the chunk queue", "sqs:ReceiveMessage", func(t *testing.T, tpl map[string]any) {
		doc := roleStatements(t, tpl)
		for _, st := range list(doc["Statement"]) {
			acts := strs(obj(st)["Action"])
			if slices.Contains(acts, "sqs:ReceiveMessage") {
				obj(st)["Action"] = slices.DeleteFunc(acts, func(a string) bool { return a == "sqs:ReceiveMessage" })
				return
			}
		}
		t.Fatal("no statement grants sqs:ReceiveMessage")
	}},
	{"the async failure queue has no alarm", "the async failure queue's depth", func(t *testing.T, tpl map[string]any) {
		res := obj(tpl["Resources"])
		for id, r := range res {
			if dims := list(obj(obj(r)["Properties"])["Dimensions"]); len(dims) == 1 && strings.Contains(render(obj(dims[0])["Value"]), "AsyncFailure") {
				delete(res, id)
			}
		}
	}},
	{"the events dead-letter queue has no alarm", "the events dead-letter queue's depth", func(t *testing.T, tpl map[string]any) {
		res := obj(tpl["Resources"])
		for id, r := range res {
			if dims := list(obj(obj(r)["Properties"])["Dimensions"]); len(dims) == 1 && strings.Contains(render(obj(dims[0])["Value"]), "EventsDeadLetter") {
				delete(res, id)
			}
		}
	}},
	{"the throttles alarm is gone", "Throttles", func(t *testing.T, tpl map[string]any) {
		res := obj(tpl["Resources"])
		for id, r := range res {
			if obj(obj(r)["Properties"])["MetricName"] == "Throttles" {
				delete(res, id)
			}
		}
	}},
	{"an alarm notifies a fixed topic", "AlarmActions", func(t *testing.T, tpl map[string]any) {
		for _, r := range obj(tpl["Resources"]) {
			if obj(obj(r)["Properties"])["MetricName"] == "IteratorAge" {
				obj(obj(r)["Properties"])["AlarmActions"] = []any{"arn:aws:sns:us-east-1:123456789012:other"}
			}
		}
	}},
	{"the registry table has a stream", "StreamSpecification", func(t *testing.T, tpl map[string]any) {
		resourceProps(t, tpl, "AWS::DynamoDB::Table", "-registry")["StreamSpecification"] = map[string]any{"StreamViewType": "KEYS_ONLY"}
	}},
	{"the data table has no PITR", "PointInTimeRecoveryEnabled", func(t *testing.T, tpl map[string]any) {
		delete(resourceProps(t, tpl, "AWS::DynamoDB::Table", "-data"), "PointInTimeRecoverySpecification")
	}},
	{"the data table's TTL is off", "TimeToLiveSpecification.Enabled", func(t *testing.T, tpl map[string]any) {
		obj(resourceProps(t, tpl, "AWS::DynamoDB::Table", "-data")["TimeToLiveSpecification"])["Enabled"] = false
	}},
	{"the runtime is x86_64", "Architectures", func(t *testing.T, tpl map[string]any) {
		resourceProps(t, tpl, "AWS::Lambda::Function", "")["Architectures"] = []any{"x86_64"}
	}},
	{"GraphiQL is public by default", "PLAYGROUND", func(t *testing.T, tpl map[string]any) {
		obj(obj(resourceProps(t, tpl, "AWS::Lambda::Function", "")["Environment"])["Variables"])["PLAYGROUND"] = "true"
	}},
	{"WEBSOCKET_ENDPOINT is missing", "WEBSOCKET_ENDPOINT", func(t *testing.T, tpl map[string]any) {
		delete(obj(obj(resourceProps(t, tpl, "AWS::Lambda::Function", "")["Environment"])["Variables"]), "WEBSOCKET_ENDPOINT")
	}},
	{"$default has no route response", "RouteResponse", func(t *testing.T, tpl map[string]any) {
		id, _ := routeProps(t, tpl, "$default")
		for rid, r := range obj(tpl["Resources"]) {
			if str(obj(r)["Type"]) == "AWS::ApiGatewayV2::RouteResponse" && render(obj(obj(r)["Properties"])["RouteId"]) == "${"+id+"}" {
				delete(obj(tpl["Resources"]), rid)
			}
		}
	}},
	{"GET /graphql is missing", "GET /graphql", func(t *testing.T, tpl map[string]any) {
		id, _ := routeProps(t, tpl, "GET /graphql")
		delete(obj(tpl["Resources"]), id)
	}},
	{"the registry grants Scan", "dynamodb:Scan", func(t *testing.T, tpl map[string]any) {
		doc := roleStatements(t, tpl)
		for _, s := range list(doc["Statement"]) {
			if slices.Contains(strs(obj(s)["Action"]), "dynamodb:BatchWriteItem") {
				obj(s)["Action"] = append(list(obj(s)["Action"]), "dynamodb:Scan")
				return
			}
		}
		t.Fatal("no statement grants dynamodb:BatchWriteItem")
	}},
	{"the data table grants dynamodb:*", "wildcard action", func(t *testing.T, tpl map[string]any) {
		doc := roleStatements(t, tpl)
		doc["Statement"] = append(list(doc["Statement"]), map[string]any{
			"Effect": "Allow", "Action": "dynamodb:*",
			"Resource": map[string]any{"Fn::GetAtt": []any{"DataTable", "Arn"}},
		})
	}},
	{"a dynamodb grant is on Resource *", `Resource "*"`, func(t *testing.T, tpl map[string]any) {
		doc := roleStatements(t, tpl)
		doc["Statement"] = append(list(doc["Statement"]), map[string]any{
			"Effect": "Allow", "Action": []any{"dynamodb:GetItem"}, "Resource": "*",
		})
	}},
	// What the framework's own role would add for a websocket event.
	{"ManageConnections is granted on every API", "execute-api:ManageConnections", func(t *testing.T, tpl map[string]any) {
		doc := roleStatements(t, tpl)
		doc["Statement"] = append(list(doc["Statement"]), map[string]any{
			"Effect": "Allow", "Action": []any{"execute-api:ManageConnections"},
			"Resource": []any{map[string]any{"Fn::Sub": "arn:${AWS::Partition}:execute-api:*:*:*/@connections/*"}},
		})
	}},
	{"the WebSocket invoke permission has no SourceArn", "Lambda permission", func(t *testing.T, tpl map[string]any) {
		for _, r := range obj(tpl["Resources"]) {
			p := obj(obj(r)["Properties"])
			if str(obj(r)["Type"]) == "AWS::Lambda::Permission" && strings.Contains(render(p["SourceArn"]), "WebsocketsApi") {
				delete(p, "SourceArn")
			}
		}
	}},
	{"the WebSocket URL output is missing", "GraphqlWebSocketUrl", func(t *testing.T, tpl map[string]any) {
		delete(obj(tpl["Outputs"]), "GraphqlWebSocketUrl")
	}},
	{"the events rule misses a type the schema subscribes to", "detail-type", func(t *testing.T, tpl map[string]any) {
		for _, r := range obj(tpl["Resources"]) {
			if p := obj(obj(r)["Properties"]); p["EventPattern"] != nil {
				obj(p["EventPattern"])["detail-type"] = []any{"lambdaws.invalidate"}
			}
		}
	}},
	{"the events rule is gone", "EventPattern", func(t *testing.T, tpl map[string]any) {
		for id, r := range obj(tpl["Resources"]) {
			if obj(obj(r)["Properties"])["EventPattern"] != nil {
				delete(obj(tpl["Resources"]), id)
			}
		}
	}},
	{"the events queue has no redrive policy", "RedrivePolicy", func(t *testing.T, tpl map[string]any) {
		for _, r := range obj(tpl["Resources"]) {
			if p := obj(obj(r)["Properties"]); str(p["QueueName"]) == "lambdaws-"+stage+"-events" {
				delete(p, "RedrivePolicy")
			}
		}
	}},
	{"the events queue's visibility timeout is the function's", "VisibilityTimeout", func(t *testing.T, tpl map[string]any) {
		for _, r := range obj(tpl["Resources"]) {
			if p := obj(obj(r)["Properties"]); str(p["QueueName"]) == "lambdaws-"+stage+"-events" {
				p["VisibilityTimeout"] = 29.0
			}
		}
	}},
	{"the events queue's partial batch responses are off", "events queue mapping FunctionResponseTypes", func(t *testing.T, tpl map[string]any) {
		for _, r := range obj(tpl["Resources"]) {
			if p := obj(obj(r)["Properties"]); obj(r)["Type"] == "AWS::Lambda::EventSourceMapping" && p["StartingPosition"] == nil {
				delete(p, "FunctionResponseTypes")
			}
		}
	}},
	{"asynchronous invokes have no on-failure destination", "EventInvokeConfig", func(t *testing.T, tpl map[string]any) {
		delete(resourceProps(t, tpl, "AWS::Lambda::EventInvokeConfig", ""), "DestinationConfig")
	}},
	{"the function may not delete from the events queue", "sqs:DeleteMessage", func(t *testing.T, tpl map[string]any) {
		doc := roleStatements(t, tpl)
		for _, s := range list(doc["Statement"]) {
			if slices.Contains(strs(obj(s)["Action"]), "sqs:ReceiveMessage") {
				obj(s)["Action"] = []any{"sqs:ReceiveMessage", "sqs:GetQueueAttributes"}
			}
		}
	}},
	{"the function may send to the events queue", "sqs:SendMessage", func(t *testing.T, tpl map[string]any) {
		doc := roleStatements(t, tpl)
		doc["Statement"] = append(list(doc["Statement"]), map[string]any{
			"Effect": "Allow", "Action": []any{"sqs:SendMessage"}, "Resource": map[string]any{"Fn::GetAtt": []any{"EventsQueue", "Arn"}},
		})
	}},
	{"SNS may invoke from any topic", "SNS", func(t *testing.T, tpl map[string]any) {
		for _, r := range obj(tpl["Resources"]) {
			if p := obj(obj(r)["Properties"]); p["Principal"] == "sns.amazonaws.com" {
				delete(p, "SourceArn")
			}
		}
	}},
	{"the events rule misses lambdaws.invalidate", "detail-type", func(t *testing.T, tpl map[string]any) {
		for _, r := range obj(tpl["Resources"]) {
			if p := obj(obj(r)["Properties"]); p["EventPattern"] != nil {
				obj(p["EventPattern"])["detail-type"] = []any{"chat.announcement"}
			}
		}
	}},
	{"a second rule for lambdaws.invalidate", "AWS::Events::Rule", func(t *testing.T, tpl map[string]any) {
		res := obj(tpl["Resources"])
		for id, r := range res {
			if p := obj(obj(r)["Properties"]); obj(r)["Type"] == "AWS::Events::Rule" && p["EventPattern"] != nil {
				second := map[string]any{"Type": "AWS::Events::Rule", "Properties": map[string]any{
					"EventPattern": map[string]any{"detail-type": []any{"lambdaws.invalidate"}}, "State": "ENABLED", "Targets": p["Targets"]}}
				res[id+"Invalidate"] = second
				return
			}
		}
	}},
	{"the WebSocket stage is not throttled", "WebsocketsDeploymentStage", func(t *testing.T, tpl map[string]any) {
		delete(obj(obj(obj(tpl["Resources"])["WebsocketsDeploymentStage"])["Properties"]), "DefaultRouteSettings")
	}},
	{"the HTTP stage's burst is over the account's", "HttpApiStage", func(t *testing.T, tpl map[string]any) {
		obj(obj(obj(obj(tpl["Resources"])["HttpApiStage"])["Properties"])["DefaultRouteSettings"])["ThrottlingBurstLimit"] = 20000.0
	}},
	{"CORS allows any origin", "AllowOrigins", func(t *testing.T, tpl map[string]any) {
		obj(obj(obj(obj(tpl["Resources"])["HttpApi"])["Properties"])["CorsConfiguration"])["AllowOrigins"] = []any{"*"}
	}},
	{"AUTH_MODE is missing", "AUTH_MODE", func(t *testing.T, tpl map[string]any) {
		delete(obj(obj(resourceProps(t, tpl, "AWS::Lambda::Function", "")["Environment"])["Variables"]), "AUTH_MODE")
	}},
}

// schemaEventTypes is what the events rule must match: every event type the app's schema
// subscribes to, and lambdaws.invalidate, sorted.
var schemaEventTypes = func() []string {
	src, err := graph.Analyze(graph.Schema())
	if err != nil {
		panic(err)
	}
	types := append(src.EventTypes(), envelope.InvalidateType)
	sort.Strings(types)
	return types
}()
