'use strict';
// aws-lambda-graphql's DynamoDB stream handler, built as its README and its chat example server
// build it (Server with DynamoDBConnectionManager, DynamoDBSubscriptionManager and
// DynamoDBEventProcessor; published events go through DynamoDBEventStore's Events table, whose
// stream invokes server.createEventHandler()). The only changes: the DynamoDB clients point at
// dynalite, the tables have the benchmark's names, and onError (a documented option of the
// processor) counts errors besides logging them, so that a swallowed failed post fails the run.
//
// The schema is lambdaws's example (graph/schema.graphqls) reduced to what the benchmark's
// subscription selects; its room is part of the event name ('messageAdded:' + roomId), so a
// fan-out reads only the room's subscribers, as lambdaws reads only its topic's.
const { DynamoDB } = require('aws-sdk');
const {
  Server,
  DynamoDBConnectionManager,
  DynamoDBSubscriptionManager,
  DynamoDBEventProcessor,
  DynamoDBEventStore,
  PubSub,
} = require('aws-lambda-graphql');

const typeDefs = require('../peer-schema.js') + /* GraphQL */ `
  type Mutation {
    sendMessage(roomId: ID!, author: String!, text: String!): Message!
  }
`;

module.exports = ({ dynamodbEndpoint, tables }) => {
  const errors = { count: 0, first: null };
  const dynamoDbClient = new DynamoDB.DocumentClient({ endpoint: dynamodbEndpoint });
  const eventStore = new DynamoDBEventStore({ dynamoDbClient, eventsTable: tables.events });
  const pubSub = new PubSub({ eventStore });
  const subscriptionManager = new DynamoDBSubscriptionManager({
    dynamoDbClient,
    subscriptionsTableName: tables.subscriptions,
    subscriptionOperationsTableName: tables.subscriptionOperations,
  });
  const connectionManager = new DynamoDBConnectionManager({
    dynamoDbClient,
    connectionsTable: tables.connections,
    subscriptions: subscriptionManager,
  });
  const resolvers = {
    Query: { messages: () => [] },
    Mutation: {
      sendMessage: async (_, { roomId, author, text }) => {
        const message = { id: String(Date.now()), roomId, author, text, createdAt: new Date().toISOString() };
        await pubSub.publish(`messageAdded:${roomId}`, message);
        return message;
      },
    },
    Subscription: {
      messageAdded: {
        resolve: (message) => message,
        subscribe: (root, args, context, info) => pubSub.subscribe(`messageAdded:${args.roomId}`)(root, args, context, info),
      },
    },
  };
  const server = new Server({
    connectionManager,
    eventProcessor: new DynamoDBEventProcessor({
      onError: (err) => {
        errors.count++;
        if (errors.first === null) errors.first = String(err && err.stack ? err.stack : err);
        console.error(err);
      },
    }),
    resolvers,
    subscriptionManager,
    typeDefs,
  });
  return { handler: server.createEventHandler(), errors };
};
