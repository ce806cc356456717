package app

import (
	"context"
	"fmt"
	"io"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/realtime-gql/lambdaws/internal/fanout"
	dynamostore "github.com/realtime-gql/lambdaws/store/dynamo"
	"github.com/realtime-gql/lambdaws/web"
	"github.com/rs/zerolog"
)

// Lambda builds the handler the function runs on AWS: the DynamoDB store on the tables cfg names,
// the management API at endpoint (https://{api-id}.execute-api.{region}.amazonaws.com/{stage};
// the stream path has no request context to derive it from), the chunk queue at
// cfg.ChunkQueueURL when set (AWS_ENDPOINT_URL_SQS, read by the SDK, points it elsewhere), all
// with the SDK's default configuration (the Region and credentials Lambda provides) and retries
// without the retry-token bucket. metrics receives the EMF lines (stdout on Lambda, shared with
// the JSON logs). With cfg.Playground, GraphiQL is served to browsers on GET /graphql,
// subscribing through cfg.WebSocketURL.
func Lambda(ctx context.Context, cfg Config, endpoint string, metrics io.Writer, log zerolog.Logger) (*Service, error) {
	cfg = cfg.WithDefaults()
	pages, err := playground(cfg, endpoint)
	if err != nil {
		return nil, err
	}
	cfg, err = cfg.verifier(ctx)
	if err != nil {
		return nil, err
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, config.WithRetryer(retryer(0)))
	if err != nil {
		return nil, fmt.Errorf("aws config: %w", err)
	}
	gw, err := NewGateway(awsCfg, endpoint, cfg.DeliveryConcurrency)
	if err != nil {
		return nil, fmt.Errorf("WEBSOCKET_ENDPOINT: %w", err)
	}
	var queue fanout.Queue
	if cfg.ChunkQueueURL != "" {
		queue = NewQueue(awsCfg, cfg.ChunkQueueURL, "")
	}
	s := dynamostore.New(dynamodb.NewFromConfig(awsCfg), dynamostore.Options{RegistryTable: cfg.RegistryTable, DataTable: cfg.DataTable})
	return newService(cfg, s, Deps{Gateway: gw, Queue: queue, Metrics: metrics}, log, pages)
}

// playground returns a deployed stage's pages: nil unless cfg.Playground.
func playground(cfg Config, endpoint string) (*web.Pages, error) {
	if !cfg.Playground {
		return nil, nil
	}
	wsURL := cfg.WebSocketURL
	if wsURL == "" {
		u, err := web.WebSocketURLFor(endpoint)
		if err != nil {
			return nil, fmt.Errorf("PLAYGROUND: set WEBSOCKET_URL, or WEBSOCKET_ENDPOINT to derive it from: %w", err)
		}
		wsURL = u
	}
	pages, err := web.New(web.Options{WebSocketURL: wsURL})
	if err != nil {
		return nil, fmt.Errorf("PLAYGROUND: WEBSOCKET_URL: %w", err)
	}
	return pages, nil
}
