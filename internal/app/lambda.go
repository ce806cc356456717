package app

import (
	"context"
	"fmt"
	"io"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/realtime-gql/lambdaws/internal/fanout"
	dynamostore "github.com/realtime-gql/lambdaws/store/dynamo"
	"github.com/rs/zerolog"
)

// Lambda builds the handler the function runs on AWS: the DynamoDB store on the tables cfg names,
// the management API at endpoint (https://{api-id}.execute-api.{region}.amazonaws.com/{stage};
// the stream path has no request context to derive it from), the chunk queue at
// cfg.ChunkQueueURL when set, all with the SDK's default configuration (the Region and
// credentials Lambda provides) and retries without the retry-token bucket. metrics receives the
// EMF lines (stdout on Lambda, shared with the JSON logs).
func Lambda(ctx context.Context, cfg Config, endpoint string, metrics io.Writer, log zerolog.Logger) (*Service, error) {
	cfg = cfg.WithDefaults()
	awsCfg, err := config.LoadDefaultConfig(ctx, config.WithRetryer(retryer(0)))
	if err != nil {
		return nil, fmt.Errorf("aws config: %w", err)
	}
	poster, err := NewPoster(awsCfg, endpoint, cfg.DeliveryConcurrency)
	if err != nil {
		return nil, fmt.Errorf("WEBSOCKET_ENDPOINT: %w", err)
	}
	var queue fanout.Queue
	if cfg.ChunkQueueURL != "" {
		queue = NewQueue(awsCfg, cfg.ChunkQueueURL, "")
	}
	s := dynamostore.New(dynamodb.NewFromConfig(awsCfg), dynamostore.Options{RegistryTable: cfg.RegistryTable, DataTable: cfg.DataTable})
	return NewService(cfg, s, Deps{Gateway: NewGateway(awsCfg, endpoint, cfg.DeliveryConcurrency), Poster: poster,
		Queue: queue, Metrics: metrics}, log), nil
}
