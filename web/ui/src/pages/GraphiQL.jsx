// GraphiQL on /graphql: queries and mutations over HTTP, subscriptions over
// the websocket (graphql-ws), the docs and the explorer in the sidebar,
// request headers settable. The token, if any, is sent on both.
// ?query=… opens a query in a new tab (links from the rest of the UI).
import '../monaco-workers.js';
import { useEffect, useMemo } from 'react';
import { GraphiQL } from 'graphiql';
import { explorerPlugin } from '@graphiql/plugin-explorer';
import { createGraphiQLFetcher } from '@graphiql/toolkit';
import { createClient } from 'graphql-ws';
import 'graphiql/style.css';
import '@graphiql/plugin-explorer/style.css';
import { auth, useAuth } from '../api.js';
import { useParams } from '../router.jsx';

const DEFAULT_QUERY = `# meshgate's GraphQL API. Run with Ctrl-Enter. The Docs and the Explorer
# are in the left sidebar; request headers (e.g. Authorization) below.
#
# Subscriptions run over the websocket, for example:
#   subscription { changes { product entity key op actor cursor } }

query Mesh {
  mesh { version products }
  catalog {
    name
    owner
    kind
    freshness { lastChangedAt sequence }
    entities { name rowCount }
  }
}
`;

const explorer = explorerPlugin({ showAttribution: false });

export default function GraphiQLPage() {
  const a = useAuth();
  const params = useParams();
  const initialQuery = params.get('query') || undefined;

  const { fetcher, dispose } = useMemo(() => {
    const wsClient = createClient({
      url: `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/graphql`,
      lazy: true,
      connectionParams: () => auth.headers(),
    });
    const f = createGraphiQLFetcher({
      url: `${location.origin}/graphql`,
      wsClient,
      headers: auth.headers(),
    });
    return { fetcher: f, dispose: () => wsClient.dispose() };
    // a new token: a new fetcher and a new websocket
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [a.token]);
  useEffect(() => dispose, [dispose]);

  return (
    <div className="graphiql-wrap" data-testid="graphiql">
      <GraphiQL
        fetcher={fetcher}
        plugins={[explorer]}
        visiblePlugin={explorer}
        defaultQuery={DEFAULT_QUERY}
        initialQuery={initialQuery}
        isHeadersEditorEnabled
        defaultEditorToolsVisibility={initialQuery ? false : 'headers'}
        forcedTheme="light"
        shouldPersistHeaders={false}
      />
    </div>
  );
}
