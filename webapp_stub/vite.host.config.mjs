// The Mattermost stand-in the browser tests load the plugin bundle into (tests/browser/host/):
// React 18 and ReactDOM as window globals, a plugin registry and a store.
import {fileURLToPath} from 'node:url';
import {defineConfig} from 'vite';

export default defineConfig({
  root: fileURLToPath(new URL('./src/mattermost-host', import.meta.url)),
  base: './',
  define: {'process.env.NODE_ENV': '"production"'},
  build: {
    outDir: fileURLToPath(new URL('../tests/browser/host', import.meta.url)),
    emptyOutDir: true,
    target: 'es2020',
  },
});
