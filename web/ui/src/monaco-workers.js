// Monaco (GraphiQL's editor) runs its language services in web workers.
// Vite bundles each worker as a file of its own (?worker), served from the
// gateway like every other asset. This must run before monaco loads, so
// GraphiQL.jsx imports it first.
import JsonWorker from 'monaco-editor/esm/vs/language/json/json.worker.js?worker';
import GraphQLWorker from 'monaco-graphql/esm/graphql.worker.js?worker';
import EditorWorker from 'monaco-editor/esm/vs/editor/editor.worker.js?worker';

globalThis.MonacoEnvironment = {
  getWorker(_id, label) {
    if (label === 'json') return new JsonWorker();
    if (label === 'graphql') return new GraphQLWorker();
    return new EditorWorker();
  },
};
