// Package cli holds the bootstrap binary's subcommands other than serving; today `publish`, which
// emits one event through package emit.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/realtime-gql/lambdaws/emit"
	"github.com/realtime-gql/lambdaws/internal/envelope"
)

// A PublishCommand is a parsed `bootstrap publish`: the emitter's configuration (without its AWS
// configuration, which Run loads) and the event.
type PublishCommand struct {
	Config emit.Config
	Type   string
	Data   json.RawMessage
}

// PublishFlags returns the flags of `bootstrap publish` with their defaults, for help (the
// command's synopsis and its help are bootstrap's, in main).
func PublishFlags() *flag.FlagSet {
	var (
		c            PublishCommand
		target, data string
	)
	return publishFlags(&c, &target, &data)
}

// publishFlags defines the flags of `bootstrap publish`, read into c, target and data. The flag
// set prints nothing.
func publishFlags(c *PublishCommand, target, data *string) *flag.FlagSet {
	fs := flag.NewFlagSet("publish", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.StringVar(&c.Type, "type", "", "the event `type`, as @fromEvent(type: ...) names it (required)")
	fs.StringVar(data, "data", "{}", "the payload, a `JSON` object of at most 128 KiB")
	fs.StringVar(target, "target", string(emit.Local), "where the event goes: local (the invoke endpoint), eventbridge, sqs or sns; "+
		"the AWS `target`s use the SDK's standard configuration (AWS_REGION, AWS_PROFILE, credentials, AWS_ENDPOINT_URL)")
	fs.StringVar(&c.Config.URL, "url", emit.DefaultLocalURL, "the local runtime's invoke endpoint `URL` (target local)")
	fs.StringVar(&c.Config.EventBusName, "bus", emit.DefaultEventBus, "the EventBridge `bus`'s name or ARN (target eventbridge)")
	fs.StringVar(&c.Config.QueueURL, "queue-url", "", "the SQS queue's `URL` (target sqs, required)")
	fs.StringVar(&c.Config.TopicARN, "topic-arn", "", "the SNS topic's `ARN` (target sns, required)")
	fs.StringVar(&c.Config.Source, "source", emit.DefaultSource, "the EventBridge or CloudEvents `source` naming the sender")
	return fs
}

// ParsePublish parses and checks the arguments of `bootstrap publish` (those after "publish"),
// reporting every mistake at once, one per line of the error. It prints nothing: the caller
// reports the error once. -h and --help return flag.ErrHelp.
func ParsePublish(args []string) (PublishCommand, error) {
	var c PublishCommand
	var target, data string
	fs := publishFlags(&c, &target, &data)
	if err := fs.Parse(args); err != nil {
		return PublishCommand{}, err
	}
	c.Config.Target = emit.Target(target)
	c.Data = json.RawMessage(data)

	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var errs []error
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	if !set["type"] {
		errs = append(errs, errors.New("--type is required"))
	} else if err := envelope.CheckType(c.Type); err != nil {
		errs = append(errs, fmt.Errorf("--type: %w", err))
	}
	if err := envelope.CheckData(c.Data); err != nil {
		errs = append(errs, fmt.Errorf("--data: %w", err))
	}
	if err := envelope.CheckSource(c.Config.Source); err != nil {
		errs = append(errs, fmt.Errorf("--source: %w", err))
	}
	if !slices.Contains(emit.Targets, c.Config.Target) {
		errs = append(errs, fmt.Errorf("--target %q: want local, eventbridge, sqs or sns", target))
	}
	// Each target's flags, and only its own.
	own := map[string]emit.Target{"url": emit.Local, "bus": emit.EventBridge, "queue-url": emit.SQS, "topic-arn": emit.SNS}
	for _, name := range []string{"url", "bus", "queue-url", "topic-arn"} {
		if set[name] && own[name] != c.Config.Target {
			errs = append(errs, fmt.Errorf("--%s applies to --target %s only", name, own[name]))
		}
	}
	if c.Config.Target == emit.SQS && c.Config.QueueURL == "" {
		errs = append(errs, errors.New("--target sqs needs --queue-url"))
	}
	if c.Config.Target == emit.SNS && c.Config.TopicARN == "" {
		errs = append(errs, errors.New("--target sns needs --topic-arn"))
	}
	if len(errs) > 0 {
		return PublishCommand{}, errors.Join(errs...)
	}
	return c, nil
}

// Run runs a parsed `bootstrap publish`: it emits the event and prints its id on stdout. The AWS
// targets load the SDK's configuration the standard way (AWS_REGION, AWS_PROFILE, credentials, and
// AWS_ENDPOINT_URL to reach an emulator).
func (c PublishCommand) Run(ctx context.Context, stdout io.Writer) error {
	var err error
	if c.Config.Target != emit.Local {
		if c.Config.AWS, err = config.LoadDefaultConfig(ctx); err != nil {
			return fmt.Errorf("publish: aws config: %w", err)
		}
	}
	em, err := emit.New(c.Config)
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	id, err := em.Emit(ctx, c.Type, c.Data)
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	_, err = fmt.Fprintln(stdout, id)
	return err
}
