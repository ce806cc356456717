package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/realtime-gql/lambdaws/emit"
	"github.com/realtime-gql/lambdaws/emit/emittest"
	"github.com/realtime-gql/lambdaws/internal/cli"
	"github.com/realtime-gql/lambdaws/internal/envelope"
)

func TestParsePublish(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want cli.PublishCommand
	}{
		{[]string{"--type", "chat.announcement"}, cli.PublishCommand{Type: "chat.announcement", Data: json.RawMessage("{}"),
			Config: emit.Config{Target: emit.Local, URL: emit.DefaultLocalURL, EventBusName: "default", Source: "lambdaws.emit"}}},
		{[]string{"--type", "t", "--data", `{"roomId":"r1"}`, "--url", "http://127.0.0.1:4100/2015-03-31/functions/function/invocations"},
			cli.PublishCommand{Type: "t", Data: json.RawMessage(`{"roomId":"r1"}`), Config: emit.Config{Target: emit.Local,
				URL: "http://127.0.0.1:4100/2015-03-31/functions/function/invocations", EventBusName: "default", Source: "lambdaws.emit"}}},
		{[]string{"--type", "t", "--target", "eventbridge", "--bus", "chat", "--source", "com.example"},
			cli.PublishCommand{Type: "t", Data: json.RawMessage("{}"), Config: emit.Config{Target: emit.EventBridge,
				URL: emit.DefaultLocalURL, EventBusName: "chat", Source: "com.example"}}},
		{[]string{"--type=t", "--target=sqs", "--queue-url=https://sqs.eu-west-1.amazonaws.com/1/q"},
			cli.PublishCommand{Type: "t", Data: json.RawMessage("{}"), Config: emit.Config{Target: emit.SQS,
				URL: emit.DefaultLocalURL, EventBusName: "default", Source: "lambdaws.emit", QueueURL: "https://sqs.eu-west-1.amazonaws.com/1/q"}}},
		{[]string{"--type", "t", "--target", "sns", "--topic-arn", "arn:aws:sns:eu-west-1:1:chat"},
			cli.PublishCommand{Type: "t", Data: json.RawMessage("{}"), Config: emit.Config{Target: emit.SNS,
				URL: emit.DefaultLocalURL, EventBusName: "default", Source: "lambdaws.emit", TopicARN: "arn:aws:sns:eu-west-1:1:chat"}}},
	} {
		got, err := cli.ParsePublish(tc.args)
		if err != nil {
			t.Errorf("ParsePublish(%q): %v", tc.args, err)
			continue
		}
		if g, w := mustJSON(got), mustJSON(tc.want); g != w {
			t.Errorf("ParsePublish(%q):\n got %s\nwant %s", tc.args, g, w)
		}
	}
}

func mustJSON(c cli.PublishCommand) string {
	b, _ := json.Marshal(map[string]any{"type": c.Type, "data": c.Data, "target": c.Config.Target, "url": c.Config.URL,
		"bus": c.Config.EventBusName, "queue": c.Config.QueueURL, "topic": c.Config.TopicARN, "source": c.Config.Source})
	return string(b)
}

func TestParsePublishMistakes(t *testing.T) {
	big := `{"a":"` + strings.Repeat("x", envelope.MaxData-7) + `"}` // MaxData+1 bytes
	for _, tc := range []struct {
		args []string
		want []string // every line the error must have
	}{
		{nil, []string{"--type is required"}},
		{[]string{"--type", ""}, []string{"--type: invalid event type: is empty"}},
		{[]string{"--type", "t", "--data", "[1]"}, []string{"--data: is not a JSON object"}},
		{[]string{"--type", "t", "--data", "{"}, []string{"--data: is not a JSON object"}},
		{[]string{"--type", "t", "--data", big}, []string{"--data: is 131073 bytes, over the limit of 131072"}},
		{[]string{"--type", "t", "--target", "kafka"}, []string{`--target "kafka": want local, eventbridge, sqs or sns`}},
		{[]string{"--type", "t", "--target", "sqs"}, []string{"--target sqs needs --queue-url"}},
		{[]string{"--type", "t", "--target", "sns"}, []string{"--target sns needs --topic-arn"}},
		{[]string{"--type", "t", "--source", "my app"}, []string{"--source: has spaces (a source is a URI reference)"}},
		{[]string{"--type", "t", "--target", "eventbridge", "--queue-url", "u", "--url", "x"},
			[]string{"--url applies to --target local only", "--queue-url applies to --target sqs only"}},
		{[]string{"--type", "t", "extra"}, []string{`unexpected argument "extra"`}},
		{[]string{"--data", "[]", "--target", "sns"}, []string{"--type is required", "--data: is not a JSON object", "--target sns needs --topic-arn"}},
	} {
		_, err := cli.ParsePublish(tc.args)
		if err == nil {
			t.Errorf("ParsePublish(%.60q) accepted it", tc.args)
			continue
		}
		if got := strings.Split(err.Error(), "\n"); strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
			t.Errorf("ParsePublish(%.60q):\n got %q\nwant %q", tc.args, got, tc.want)
		}
	}
	if _, err := cli.ParsePublish([]string{"-h"}); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v", err)
	}
	if _, err := cli.ParsePublish([]string{"--typo", "x"}); err == nil || err.Error() != "flag provided but not defined: -typo" {
		t.Errorf("unknown flag: %v", err)
	}
}

// TestParsePublishIsSilent: parsing prints nothing, not even for -h or a flag it does not know
// (the flag package's default is to print the usage on stderr): bootstrap reports a mistake once.
func TestParsePublishIsSilent(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, stdout := os.Stderr, os.Stdout
	os.Stderr, os.Stdout = w, w
	for _, args := range [][]string{{"-h"}, {"--help"}, {"--typo"}, {"--type"}, {"--data", "[]"}, {"--type", "t"}} {
		cli.ParsePublish(args)
	}
	os.Stderr, os.Stdout = stderr, stdout
	w.Close()
	if out, _ := io.ReadAll(r); len(out) > 0 {
		t.Errorf("ParsePublish printed %q", out)
	}
}

// publish runs `bootstrap publish args` as bootstrap does: parse, then run.
func publish(ctx context.Context, args []string, stdout io.Writer) error {
	c, err := cli.ParsePublish(args)
	if err != nil {
		return err
	}
	return c.Run(ctx, stdout)
}

const data = `{"id":"a1","roomId":"lobby","text":"hi","priority":1}`

// TestPublishLocal runs the command as a user would in dev, against the invoke endpoint.
func TestPublishLocal(t *testing.T) {
	srv := emittest.NewServer(t)
	var stdout bytes.Buffer
	err := publish(context.Background(), []string{"--type", "chat.announcement", "--data", data,
		"--url", srv.URL + emittest.InvokePath}, &stdout)
	if err != nil {
		t.Fatal(err)
	}
	reqs := srv.Requests()
	if len(reqs) != 1 || reqs[0].Op != emittest.Invoke || reqs[0].Err != nil {
		t.Fatalf("requests %+v", reqs)
	}
	ch := reqs[0].Change
	if stdout.String() != ch.ID+"\n" || ch.Type != "chat.announcement" || string(ch.Value) != data {
		t.Errorf("printed %q; the function decoded %+v", stdout.String(), ch)
	}
}

// awsEnv gives the SDK what it reads from a user's environment, pointed at srv (and at no shared
// config or credentials file of this machine).
func awsEnv(t *testing.T, srv *emittest.Server) {
	dir := t.TempDir()
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL": srv.URL, "AWS_REGION": "eu-west-1", "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
		"AWS_SECRET_ACCESS_KEY": "secret", "AWS_SESSION_TOKEN": "", "AWS_PROFILE": "",
		"AWS_CONFIG_FILE": filepath.Join(dir, "config"), "AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "credentials"),
		"AWS_EC2_METADATA_DISABLED": "true", "AWS_MAX_ATTEMPTS": "2", "AWS_RETRY_MODE": "standard",
	} {
		t.Setenv(k, v)
	}
}

// TestPublishAWS runs the command against each AWS target through the SDK's standard
// configuration (AWS_ENDPOINT_URL reaches the fake), and a refusal from the service is an error.
func TestPublishAWS(t *testing.T) {
	for _, tc := range []struct {
		args []string
		op   string
	}{
		{[]string{"--target", "eventbridge", "--bus", "chat"}, emittest.PutEvents},
		{[]string{"--target", "sqs", "--queue-url", "QUEUE"}, emittest.SendMessage},
		{[]string{"--target", "sns", "--topic-arn", "arn:aws:sns:eu-west-1:111122223333:chat"}, emittest.Publish},
	} {
		t.Run(tc.op, func(t *testing.T) {
			srv := emittest.NewServer(t)
			awsEnv(t, srv)
			args := append([]string{"--type", "chat.announcement", "--data", data, "--source", "com.example.chat"}, tc.args...)
			for i, a := range args {
				args[i] = strings.ReplaceAll(a, "QUEUE", srv.URL+"/111122223333/events")
			}
			var stdout bytes.Buffer
			if err := publish(context.Background(), args, &stdout); err != nil {
				t.Fatal(err)
			}
			reqs := srv.Requests()
			if len(reqs) != 1 || reqs[0].Op != tc.op || reqs[0].Err != nil {
				t.Fatalf("requests %+v", reqs)
			}
			if ch := reqs[0].Change; stdout.String() != ch.ID+"\n" || ch.Type != "chat.announcement" || string(ch.Value) != data {
				t.Errorf("printed %q; the function decoded %+v", stdout.String(), ch)
			}

			srv.SetFault(func(_ int, w http.ResponseWriter) bool {
				emittest.AWSError(w, http.StatusForbidden, tc.op, "AccessDeniedException", "not allowed")
				return true
			})
			stdout.Reset()
			err := publish(context.Background(), args, &stdout)
			if err == nil || !strings.Contains(err.Error(), "AccessDeniedException") || stdout.Len() != 0 {
				t.Errorf("Publish refused by the service = %v, printed %q", err, stdout.String())
			}
		})
	}
}
