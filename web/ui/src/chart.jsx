// ECharts, tree-shaken through echarts/core: only the charts and components
// the dashboard draws are bundled.
import { useEffect, useRef } from 'react';
import * as echarts from 'echarts/core';
import { LineChart, BarChart } from 'echarts/charts';
import { GridComponent, TooltipComponent } from 'echarts/components';
import { CanvasRenderer } from 'echarts/renderers';

echarts.use([LineChart, BarChart, GridComponent, TooltipComponent, CanvasRenderer]);

/** A chart that follows `option`; extra props (data-*) go on its box. */
export function EChart({ option, height = 280, ...rest }) {
  const box = useRef(null);
  const chart = useRef(null);
  useEffect(() => {
    chart.current = echarts.init(box.current, null, { renderer: 'canvas' });
    const ro = new ResizeObserver(() => chart.current?.resize());
    ro.observe(box.current);
    return () => {
      ro.disconnect();
      chart.current?.dispose();
      chart.current = null;
    };
  }, []);
  useEffect(() => {
    if (chart.current && option) chart.current.setOption(option, { notMerge: false, lazyUpdate: true });
  }, [option]);
  return <div ref={box} className="chart" style={{ height }} {...rest} />;
}

export const AXIS = {
  axisLine: { lineStyle: { color: '#cbd5e1' } },
  axisTick: { show: false },
  axisLabel: { color: '#64748b', fontSize: 11 },
  splitLine: { lineStyle: { color: '#eef1f6' } },
};

export const TOOLTIP = {
  backgroundColor: '#0f172a',
  borderWidth: 0,
  textStyle: { color: '#f8fafc', fontSize: 12 },
  extraCssText: 'border-radius:8px;box-shadow:0 8px 24px rgba(15,23,42,.25);',
};

export { echarts };
