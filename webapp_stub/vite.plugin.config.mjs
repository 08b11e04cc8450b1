// The plugin's webapp bundle (dist/main.js) that Mattermost loads. It renders with
// the host's React (window.React at initialize time), so no React is bundled.
import {fileURLToPath} from 'node:url';
import {defineConfig} from 'vite';

export default defineConfig({
  build: {
    outDir: fileURLToPath(new URL('./dist', import.meta.url)),
    emptyOutDir: false,
    target: 'es2017',
    minify: false,
    lib: {
      entry: fileURLToPath(new URL('./src/plugin/index.js', import.meta.url)),
      formats: ['iife'],
      name: 'IncidentResponsePlugin',
      fileName: () => 'main.js',
    },
  },
});
