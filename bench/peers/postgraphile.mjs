// PostGraphile v5 peer of the side-by-side benchmark (bench/compare).
//
// Serves GraphQL over the PostgreSQL schemas named in PG_SCHEMAS of the
// database DATABASE_URL with the amber preset. The harness runs it with
// NODE_ENV=production on Node 22 from its cache directory (where
// node_modules lives) and writes the smart tags it reads (TAGS_FILE): the
// cross-schema foreign keys of the demo mesh and the hiding of meshgate's
// own bookkeeping tables. It listens on 127.0.0.1 on a port of the
// system's choosing and prints "listening http://…/graphql" once ready.
// It stops on SIGTERM or SIGINT, or when its standard input closes (so that
// it never outlives the harness).
import { createServer } from "node:http";
import { postgraphile } from "postgraphile";
import { PostGraphileAmberPreset } from "postgraphile/presets/amber";
import { makePgService } from "postgraphile/adaptors/pg";
import { grafserv } from "postgraphile/grafserv/node";
import { pgSmartTagsFromFile } from "postgraphile/utils";

const schemas = (process.env.PG_SCHEMAS ?? "customers,orders,inventory").split(",");
const preset = {
  extends: [PostGraphileAmberPreset],
  plugins: [pgSmartTagsFromFile(process.env.TAGS_FILE, "MeshgateBenchTags")],
  pgServices: [
    makePgService({
      connectionString: process.env.DATABASE_URL,
      schemas,
      poolConfig: { max: Number(process.env.PG_POOL_MAX ?? 10) },
    }),
  ],
  grafserv: { graphqlPath: "/graphql", watch: false, graphiql: false },
  grafast: { explain: false },
};

const pgl = postgraphile(preset);
const serv = pgl.createServ(grafserv);
const server = createServer();
server.keepAliveTimeout = 120_000;
serv.addTo(server).then(() => {
  server.listen(0, "127.0.0.1", () => {
    const { port } = server.address();
    console.log(`listening http://127.0.0.1:${port}/graphql`);
  });
}, (e) => {
  console.error(e);
  process.exit(1);
});

const stop = () => {
  server.close();
  pgl.release().finally(() => process.exit(0));
  setTimeout(() => process.exit(0), 3000).unref();
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
process.stdin.on("end", stop);
process.stdin.resume();
