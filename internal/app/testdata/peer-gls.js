'use strict';
// graphql-lambda-subscriptions' publish path, built as its README builds it: makeServer({
// dynamodb, schema, tableNames }) with the subscription field's subscribe set by its subscribe()
// (topic MESSAGE_ADDED, the room as a filter, as its README filters) and no
// apiGatewayManagementApi (the README passes none: each post then builds its own client for the
// subscription's stored domainName/stage). The package has no stream handler: its README feeds
// publish() from the event source's handler (SNS, a direct invocation); here the source is the
// message table's DynamoDB stream, unmarshalled with the aws-sdk v2 converter, as lambdaws is fed.
// The only other changes: DynamoDB points at dynalite and the tables have the benchmark's names.
const { DynamoDB } = require('aws-sdk');
const { buildSchema } = require('graphql');
const { makeServer, subscribe } = require('graphql-lambda-subscriptions');

const typeDefs = require('./peer-schema.js');

module.exports = ({ dynamodbEndpoint, tables }) => {
  // What @graphql-tools/schema's makeExecutableSchema (the README's suggestion) does with the
  // resolvers: set resolve and subscribe on the field.
  const schema = buildSchema(typeDefs);
  const field = schema.getSubscriptionType().getFields().messageAdded;
  field.subscribe = subscribe('MESSAGE_ADDED', { filter: (root, args) => ({ roomId: args.roomId }) });
  field.resolve = (event) => event.payload;
  schema.getQueryType().getFields().messages.resolve = () => [];

  const server = makeServer({
    dynamodb: new DynamoDB({ endpoint: dynamodbEndpoint }),
    schema,
    tableNames: { connections: tables.connections, subscriptions: tables.subscriptions },
  });
  const handler = async (event) => {
    await Promise.all(
      event.Records.filter((r) => r.eventName === 'INSERT').map((r) =>
        server.publish({ topic: 'MESSAGE_ADDED', payload: DynamoDB.Converter.unmarshall(r.dynamodb.NewImage) }),
      ),
    );
  };
  return { handler, errors: { count: 0, first: null } };
};
