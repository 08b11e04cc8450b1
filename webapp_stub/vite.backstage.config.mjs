// The backstage page: a Preact app built to dist/backstage/, served by the plugin at /backstage/.
import {fileURLToPath} from 'node:url';
import {defineConfig} from 'vite';

export default defineConfig({
  root: fileURLToPath(new URL('./src/backstage', import.meta.url)),
  // Relative asset paths: the page lives at /backstage/ standalone and at
  // /plugins/<id>/backstage/ inside Mattermost.
  base: './',
  oxc: {jsx: {runtime: 'automatic', importSource: 'preact'}},
  build: {
    outDir: fileURLToPath(new URL('./dist/backstage', import.meta.url)),
    emptyOutDir: true,
    target: 'es2020',
    chunkSizeWarningLimit: 200,
  },
});
