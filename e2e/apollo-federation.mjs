// Apollo Federation v2 end to end: Apollo's own composition and gateway
// accept meshgate as a subgraph and execute through it.
//
// 1. Fetches meshgate's subgraph SDL from the running server (_service { sdl }).
// 2. Starts a small second subgraph, "reviews", written here with
//    @apollo/subgraph: it extends meshgate's Item entity with reviews and
//    averageRating and adds Query.topReviews, whose items meshgate resolves.
// 3. Composes both with @apollo/composition (composeServices).
// 4. Loads an @apollo/gateway with the composed supergraph and executes
//    queries that span both subgraphs, checking the data against meshgate
//    queried directly and against the reviews fixture.
//
// Usage: node e2e/apollo-federation.mjs http://127.0.0.1:PORT   (see run.sh)

import http from 'node:http';
import { createHash } from 'node:crypto';
import assert from 'node:assert/strict';
import { parse, execute } from 'graphql';
import { composeServices } from '@apollo/composition';
import { ApolloGateway } from '@apollo/gateway';
import { buildSubgraphSchema } from '@apollo/subgraph';

// No usage telemetry to Apollo from the gateway (it would also probe cloud
// metadata servers).
process.env.APOLLO_TELEMETRY_DISABLED = 'true';

const base = (process.argv[2] || process.env.MESHGATE_E2E_URL || '').replace(/\/$/, '');
if (!base) {
  console.error('usage: node apollo-federation.mjs <meshgate base URL>');
  process.exit(2);
}
const meshgateURL = `${base}/graphql`;

let passed = 0;
let failed = 0;
async function check(name, fn) {
  try {
    await fn();
    passed++;
    console.log(`ok   ${name}`);
  } catch (err) {
    failed++;
    console.log(`FAIL ${name}\n     ${(err && err.stack) || err}`.replace(/\n/g, '\n     '));
  }
}

async function meshgate(query, variables) {
  const res = await fetch(meshgateURL, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json' },
    body: JSON.stringify({ query, variables }),
  });
  const body = await res.json();
  if (!res.ok || body.errors) {
    throw new Error(`meshgate answered ${res.status}: ${JSON.stringify(body.errors || body)}`);
  }
  return body.data;
}

// ---------------------------------------------------------------------------
// The reviews subgraph: deterministic reviews of items 1 to 5.

const reviewsSDL = `
  extend schema @link(url: "https://specs.apollo.dev/federation/v2.7", import: ["@key"])

  "A customer's review of an item."
  type Review {
    id: ID!
    "Stars, 1 to 5."
    rating: Int!
    body: String!
    item: Item!
  }

  type Item @key(fields: "id") {
    id: ID!
    reviews: [Review!]!
    averageRating: Float
  }

  type Query {
    "The best reviews, best first."
    topReviews(first: Int = 3): [Review!]!
  }
`;

const reviews = [];
for (let item = 1; item <= 5; item++) {
  for (let n = 0; n < item % 3 + 1; n++) {
    reviews.push({ id: `r${item}-${n}`, itemId: String(item), rating: (item + n) % 5 + 1, body: `review ${n} of item ${item}` });
  }
}
const reviewsOf = (id) => reviews.filter((r) => r.itemId === String(id));
const average = (id) => {
  const rs = reviewsOf(id);
  return rs.length ? rs.reduce((s, r) => s + r.rating, 0) / rs.length : null;
};
const topReviews = (first) => [...reviews].sort((a, b) => b.rating - a.rating || a.id.localeCompare(b.id)).slice(0, first);

let entityCalls = 0; // _entities requests the reviews subgraph answered
const reviewsSchema = buildSubgraphSchema({
  typeDefs: parse(reviewsSDL),
  resolvers: {
    Query: { topReviews: (_, { first }) => topReviews(first) },
    Review: { item: (r) => ({ __typename: 'Item', id: r.itemId }) },
    Item: {
      __resolveReference: (ref) => ({ id: ref.id }),
      reviews: (item) => reviewsOf(item.id),
      averageRating: (item) => average(item.id),
    },
  },
});

function startReviews() {
  const server = http.createServer(async (req, res) => {
    let raw = '';
    for await (const chunk of req) raw += chunk;
    let result;
    try {
      const { query, variables, operationName } = JSON.parse(raw || '{}');
      if (query.includes('_entities')) entityCalls++;
      result = await execute({ schema: reviewsSchema, document: parse(query), variableValues: variables, operationName });
    } catch (err) {
      result = { errors: [{ message: String(err && err.message || err) }] };
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(result));
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

// ---------------------------------------------------------------------------

const reviewsServer = await startReviews();
const reviewsURL = `http://127.0.0.1:${reviewsServer.address().port}/graphql`;
let gateway;

try {
  let meshgateSDL;
  await check('meshgate serves its subgraph SDL with @link, @key and the catalog directives', async () => {
    const data = await meshgate('{ _service { sdl } }');
    meshgateSDL = data._service.sdl;
    assert.match(meshgateSDL, /@link\(url: "https:\/\/specs\.apollo\.dev\/federation\/v2\.\d+"/);
    for (const type of ['Customer', 'Order', 'OrderLine', 'Item', 'Interaction']) {
      assert.match(meshgateSDL, new RegExp(`type ${type} @key\\(fields: "id"\\)`), `${type} has no @key`);
    }
    assert.match(meshgateSDL, /email: String! @pii @classification\(level: CONFIDENTIAL\)/);
    assert.match(meshgateSDL, /@dataProduct\(/);
  });

  let supergraphSdl;
  await check('@apollo/composition composes meshgate with the reviews subgraph', async () => {
    assert.ok(meshgateSDL, 'no meshgate SDL');
    const result = composeServices([
      { name: 'meshgate', typeDefs: parse(meshgateSDL), url: meshgateURL },
      { name: 'reviews', typeDefs: parse(reviewsSDL), url: reviewsURL },
    ]);
    if (result.errors && result.errors.length) {
      throw new Error('composition errors:\n' + result.errors.map((e) => `  ${e.extensions?.code}: ${e.message}`).join('\n'));
    }
    for (const h of result.hints || []) console.log(`     hint ${h.definition.code}: ${h.message}`);
    supergraphSdl = result.supergraphSdl;
    assert.match(supergraphSdl, /type Item\s+@join__type\(graph: MESHGATE, key: "id"\)\s+@join__type\(graph: REVIEWS, key: "id"\)/);
    assert.match(supergraphSdl, /type Customer\s+@join__type\(graph: MESHGATE, key: "id"\)/);
  });

  async function run(query, variables = {}) {
    const request = { query, variables };
    const result = await gateway.executor({
      request,
      document: parse(query),
      source: query,
      queryHash: createHash('sha256').update(query).digest('hex'),
      operationName: null,
      context: {},
      logger: console,
      metrics: {},
      overallCachePolicy: { restrict() {}, replace() {}, policyIfCacheable() { return null; } },
      cache: undefined,
    });
    if (result.errors && result.errors.length) {
      throw new Error('gateway errors: ' + JSON.stringify(result.errors));
    }
    return JSON.parse(JSON.stringify(result.data)); // plain objects, for deepEqual
  }

  await check('@apollo/gateway loads the supergraph', async () => {
    assert.ok(supergraphSdl, 'no supergraph');
    gateway = new ApolloGateway({ supergraphSdl, logger: { debug() {}, info() {}, warn: console.warn, error: console.error } });
    const { schema } = await gateway.load();
    assert.ok(schema.getType('Review'), 'no Review type');
    assert.ok(schema.getType('Item').getFields().reviews, 'no Item.reviews');
  });

  // Items as meshgate serves them directly: the reference data.
  let direct = { items: { nodes: [] } };
  let itemsByID = {};
  await check('meshgate serves items 1 to 5 directly', async () => {
    direct = await meshgate('{ items(first: 5, orderBy: [{field: ID}]) { nodes { id sku name price } } }');
    itemsByID = Object.fromEntries(direct.items.nodes.map((i) => [i.id, i]));
    assert.deepEqual(Object.keys(itemsByID).sort(), ['1', '2', '3', '4', '5']);
  });

  await check('meshgate root field, reviews joined in (Item.reviews from the reviews subgraph)', async () => {
    const data = await run(`{ items(first: 5, orderBy: [{field: ID}]) { nodes { id sku name reviews { id rating body } averageRating } } }`);
    assert.equal(data.items.nodes.length, direct.items.nodes.length);
    for (const item of data.items.nodes) {
      assert.equal(item.sku, itemsByID[item.id].sku);
      assert.deepEqual(item.reviews, reviewsOf(item.id).map(({ id, rating, body }) => ({ id, rating, body })));
      assert.equal(item.averageRating, average(item.id));
    }
  });

  await check('reviews root field, items resolved by meshgate through _entities', async () => {
    const before = entityCalls;
    const data = await run(`{ topReviews(first: 4) { id rating item { id sku name price } } }`);
    const want = topReviews(4);
    assert.deepEqual(data.topReviews.map((r) => r.id), want.map((r) => r.id));
    for (const r of data.topReviews) {
      const item = itemsByID[r.item.id];
      assert.ok(item, `meshgate has no item ${r.item.id}`);
      assert.deepEqual(r.item, { id: item.id, sku: item.sku, name: item.name, price: item.price });
    }
    assert.equal(entityCalls, before, 'the reviews subgraph should not be asked for entities here');
  });

  await check('three hops: orders (meshgate) → lines → item (meshgate) → reviews (reviews)', async () => {
    const data = await run(`{ orders(first: 3, orderBy: [{field: ID}], where: {id: {lte: "3"}}) {
      nodes { id lines { itemId item { id sku reviews { rating } } } } } }`);
    assert.ok(data.orders.nodes.length > 0, 'no orders');
    for (const order of data.orders.nodes) {
      for (const line of order.lines) {
        assert.equal(line.item.id, line.itemId);
        assert.deepEqual(line.item.reviews, reviewsOf(line.itemId).map(({ rating }) => ({ rating })));
      }
    }
  });

  await check('one operation, both roots, in parallel', async () => {
    const data = await run(`query($id: ID!) { topReviews(first: 1) { item { sku } } item(id: $id) { sku averageRating } }`, { id: '2' });
    assert.equal(data.topReviews[0].item.sku, itemsByID[topReviews(1)[0].itemId].sku);
    assert.deepEqual(data.item, { sku: itemsByID['2'].sku, averageRating: average(2) });
  });

  await check('meshgate _entities answers a batch of representations in order, null for a missing id', async () => {
    const data = await meshgate(`query($reps: [_Any!]!) { _entities(representations: $reps) { __typename ... on Item { id sku } ... on Customer { id } } }`, {
      reps: [
        { __typename: 'Item', id: '3' },
        { __typename: 'Customer', id: '1' },
        { __typename: 'Item', id: '999999' },
        { __typename: 'Item', id: '1' },
      ],
    });
    assert.deepEqual(data._entities, [
      { __typename: 'Item', id: '3', sku: itemsByID['3'].sku },
      { __typename: 'Customer', id: '1' },
      null,
      { __typename: 'Item', id: '1', sku: itemsByID['1'].sku },
    ]);
  });
} finally {
  if (gateway) await gateway.stop().catch(() => {});
  reviewsServer.close();
}

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
