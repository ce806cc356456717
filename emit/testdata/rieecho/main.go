// Command rieecho is the Lambda function of emit's test under the runtime interface emulator: it
// decodes the EventBridge event it is invoked with as the real function does, writes the decoded
// change to $OUT_DIR/change.json, and fails when the event type is test.fail.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/realtime-gql/lambdaws/publish/source"
)

func main() {
	lambda.Start(func(_ context.Context, ev events.EventBridgeEvent) error {
		ch, err := source.EventBridge(ev)
		if err != nil {
			return err
		}
		if ch.Type == "test.fail" {
			return errors.New("the test asked to fail")
		}
		b, err := json.Marshal(ch)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(os.Getenv("OUT_DIR"), "change.json"), b, 0o644)
	})
}
