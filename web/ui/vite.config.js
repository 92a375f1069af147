// Builds the UI into dist/, which the Go binary embeds (web/ui.go). The
// output is committed; `npm ci && npm run build` must reproduce it byte for
// byte, so nothing here may depend on the time, the machine or the path.
//
// `npm run dev` serves the sources with hot reload and proxies the API to a
// running gateway: MESHGATE_URL=http://127.0.0.1:8080 npm run dev
import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

const gateway = process.env.MESHGATE_URL || 'http://127.0.0.1:8080';

export default defineConfig({
  plugins: [react()],
  base: '/',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    sourcemap: false,
    // Monaco (GraphiQL's editor) is one large chunk, loaded only on /graphiql.
    chunkSizeWarningLimit: 4096,
    assetsInlineLimit: 4096,
    modulePreload: { polyfill: false },
    rollupOptions: {
      onwarn(warning, warn) {
        // GraphiQL's packages start modules with "use no memo" (a React
        // compiler hint); bundling drops it, which is harmless.
        if (warning.code === 'MODULE_LEVEL_DIRECTIVE') return;
        warn(warning);
      },
    },
  },
  worker: { format: 'es' },
  server: {
    proxy: {
      '/graphql': { target: gateway, ws: true, changeOrigin: true },
      '/catalog': { target: gateway, changeOrigin: true },
    },
  },
});
