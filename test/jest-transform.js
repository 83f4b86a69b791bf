// Transpile-only TypeScript for jest: `tsc --noEmit` type-checks the whole tree once
// before jest runs (see test/run.sh), so per-file type checking here would be paid twice.
const ts = require('typescript');

module.exports = {
  process(source, filename) {
    const out = ts.transpileModule(source, {
      fileName: filename,
      compilerOptions: {
        target: ts.ScriptTarget.ES2022,
        module: ts.ModuleKind.CommonJS,
        esModuleInterop: true,
        sourceMap: false,
        inlineSourceMap: true,
      },
    });
    return { code: out.outputText };
  },
};
